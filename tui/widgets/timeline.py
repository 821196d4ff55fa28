"""The phase timeline: nine deploy phases, or the ten rollback phases while one runs."""

from __future__ import annotations

from typing import Unpack

from textual.content import Content
from textual.widgets import Static

from ..state import Checks, PhaseView, RoomState
from . import _format as fmt
from ._options import WidgetOptions

#: status -> (glyph, style); the glyph's shape says the state without colour
GLYPHS: dict[str, tuple[str, str]] = {
    "pending": ("·", "$foreground-muted"),
    "running": ("▶", "bold $primary"),
    "done": ("✓", "$success"),
    "warning": ("!", "bold $warning"),
    "failed": ("✗", "bold $error"),
    "skipped": ("-", "$foreground-muted"),
    "cancelled": ("■", "$warning"),
}


def checks_text(checks: Checks | None, compact: bool = False) -> list[tuple[str, str] | str]:
    """``14 ok 1 warn 97 GO`` (``14/15 ok 1w GO`` when compact): counts in words."""
    if checks is None or (checks.total == 0 and checks.score is None):
        return []
    if compact:
        parts: list[tuple[str, str] | str] = [(f"{checks.passed}/{checks.total} ok", "$success")]
        if checks.warned:  # a warning is never hidden by the short form
            parts += [" ", (f"{checks.warned}w", "$warning")]
        if checks.failed:
            parts += [" ", (f"{checks.failed} fail", "bold $error")]
    else:
        parts = [(f"{checks.passed} ok", "$success")]
        if checks.warned:
            parts += [" ", (f"{checks.warned} warn", "$warning")]
        if checks.failed:
            parts += [" ", (f"{checks.failed} fail", "bold $error")]
        if checks.score is not None:
            parts += [" ", (f"{checks.score:.0f}", "bold")]
    if checks.decision:
        good = checks.decision.lower() == "go"
        parts += [" ", (checks.decision.upper(), "bold $success" if good else "bold $error")]
    return parts


class PhaseTimeline(Static, can_focus=True):
    """One line per phase: glyph, number, title, duration (live while running), checks."""

    ALLOW_MAXIMIZE = True
    DEFAULT_CSS = """
    PhaseTimeline {
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, **kwargs: Unpack[WidgetOptions]) -> None:
        super().__init__(**kwargs)
        self._last: tuple[RoomState, float] | None = None
        self._shown: Content | None = None

    def on_resize(self) -> None:
        if self._last is not None:
            self._shown = None
            self.show(*self._last)

    def show(self, state: RoomState, now: float) -> None:
        self._last = (state, now)
        phases = state.timeline
        title = "[1] Rollback phases" if state.rollback is not None else "[1] Phases"
        done = sum(1 for p in phases if p.status in ("done", "warning", "skipped"))
        fmt.titles(self, title, f"{done}/{len(phases)}")
        width = max(self.content_region.width, 30) if self.content_region.width else 60
        content = Content("\n").join(self._line(p, now, width) for p in phases)
        if not fmt.same(self._shown, content):
            self._shown = content
            self.update(content)

    def _line(self, phase: PhaseView, now: float, width: int) -> Content:
        glyph, style = GLYPHS.get(phase.status, ("?", "bold"))
        shown = fmt.duration(phase.seconds)
        if phase.status == "running" and phase.started_at is not None:
            shown = fmt.running_duration(max(0.0, now - phase.started_at))
        shown = shown.rjust(7)
        checks = checks_text(phase.checks, compact=width < 56)
        checks_len = len(Content.assemble(*checks).plain) if checks else 0
        title_width = max(8, width - 5 - len(shown) - (checks_len + 1 if checks else 0) - 1)
        title = (
            phase.title if len(phase.title) <= title_width else phase.title[: title_width - 1] + "…"
        )
        title_style = "bold" if phase.status == "running" else ""
        if phase.status == "pending":
            title_style = "$foreground-muted"
        parts: list[tuple[str, str] | str] = [
            (glyph + " ", style),
            (f"{phase.number:>2} ", "$foreground-muted"),
            (title.ljust(title_width), title_style),
            (shown, "$foreground-muted" if phase.status != "running" else "bold"),
        ]
        if checks:
            parts += [" ", *checks]
        return Content.assemble(*parts)
