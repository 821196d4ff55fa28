"""Flags in words for narrow screens: a one-cell summary and a few lines per strategy.

`feature list`, `feature show` and the control room's flag table use these, so an
operator reads the same words everywhere, and they fit 80 columns.
"""

from __future__ import annotations

from .model import Flag


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def constraint_count(flag: Flag) -> int:
    return sum(
        len(s.constraints) + sum(len(g.constraints or ()) for g in s.segments)
        for s in flag.strategies or ()
        if not s.disabled
    )


def summary(flag: Flag, width: int = 28) -> str:
    """``50% by company``; ``everyone if country IN [fr]``; ``3 strategies, 4 rules``."""
    active = [s for s in flag.strategies or () if not s.disabled]
    if not active:
        return "everyone (no strategy)"
    if len(active) == 1:
        s = active[0]
        text = s.describe(flag.name)
        rules = list(s.constraints) + [c for g in s.segments for c in g.constraints or ()]
        if len(rules) == 1:
            text += f" if {rules[0].describe()}"
        elif rules:
            text += f" if {len(rules)} rules"
        elif s.segments:
            text += f" if segment {s.segments[0].id}"
        return _clip(text, width)
    n = constraint_count(flag)
    text = f"{len(active)} strategies"
    if n:
        text += f", {n} rule{'s' if n > 1 else ''}"
    return _clip(text, width)


def strategy_lines(flag: Flag, width: int = 78) -> list[str]:
    """One line per strategy, then one indented line per constraint or segment."""
    strategies = flag.strategies or ()
    if not strategies:
        return [_clip("on for everyone (no strategy, as in Unleash)", width)]
    lines = []
    for i, s in enumerate(strategies):
        title = f" “{s.title}”" if s.title else ""
        lines.append(_clip(f"{i + 1}. {s.name}{title}: {s.describe(flag.name)}", width))
        for c in s.constraints:
            lines.append(_clip(f"     and {c.describe()}", width))
        for g in s.segments:
            if g.constraints is None:
                lines.append(_clip(f"     and segment {g.id} (undefined: never on)", width))
                continue
            lines.append(_clip(f"     and segment {g.id} {g.name}".rstrip(), width))
            for c in g.constraints:
                lines.append(_clip(f"         {c.describe()}", width))
    if len(strategies) > 1:
        lines.append(_clip("(any strategy that is on turns the flag on)", width))
    return lines
