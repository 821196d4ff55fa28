"""Flags as the room shows them: from the flag service's listing or a flag's JSON, merged
with what flag events already told (a newer event wins over an older listing)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from .triggers import number as _num
from .viewmodel import FlagView, RoomState


def flag_from_dict(raw: Mapping[str, Any], previous: FlagView | None = None) -> FlagView:
    """A flag as the flag service lists it (``FlagRow.to_json``) or stores it (``Flag.to_json``)."""
    overrides = raw.get("overrides")
    base = previous or FlagView(name=str(raw.get("name", "")))
    if isinstance(overrides, Mapping):
        count = sum(len(v) for v in overrides.values() if isinstance(v, Mapping | list))
    elif isinstance(overrides, int):
        count = overrides
    else:
        count = base.overrides
    evals = raw.get("evaluations", raw.get("evaluations_last_hour", base.evaluations))
    pct = _num(raw.get("percentage"))
    flag = replace(
        base,
        enabled=bool(raw.get("enabled", base.enabled)),
        percentage=int(pct) if pct is not None else base.percentage,
        overrides=count,
        evaluations=int(evals) if isinstance(evals, int | float) else None,
        description=str(raw.get("description", base.description) or ""),
        rules=_rules(raw, base.rules),
    )
    last = raw.get("last_change")
    if isinstance(last, Mapping) and last.get("at"):
        flag = replace(
            flag,
            changed_by=str(last.get("by") or ""),
            reason=str(last.get("reason") or ""),
            change=str(last.get("action") or ""),
            changed_at=_num(last.get("at")),
        )
    return flag


def _rules(raw: Mapping[str, Any], previous: str) -> str:
    """The strategy summary: listed by the flag service, or made from a flag's JSON."""
    if isinstance(raw.get("summary"), str):
        return str(raw["summary"])
    if not isinstance(raw.get("strategies"), list) or not raw.get("name"):
        return previous
    from backend.flags.describe import summary
    from backend.flags.model import Flag

    try:
        return summary(Flag.from_json(raw))
    except (ValueError, TypeError, KeyError):
        return previous


def with_flags(
    state: RoomState,
    flags: Iterable[Mapping[str, Any]],
    emergency: str | None = None,
    listed_at: float = 0.0,
) -> RoomState:
    """Seed (or refresh) the flag table from the flag service's listing, taken at
    ``listed_at``: flag events older than that are already in it (and are then ignored);
    a flag changed by an event since is kept. ``emergency`` is the kill switch's reason
    when on ("" when off, None to leave it as events told)."""
    known = {f.name: f for f in state.flags}
    merged = dict(known)
    for raw in flags:
        name = str(raw.get("name", ""))
        if not name:
            continue
        current = known.get(name)
        if current is not None and (current.changed_at or 0.0) > listed_at:
            continue  # an event newer than the listing already told us
        merged[name] = flag_from_dict(raw, current or FlagView(name=name))
    flags_view = tuple(sorted(merged.values(), key=lambda f: f.name))
    changes: dict[str, Any] = {
        "flags": flags_view,
        "flags_listed_at": max(state.flags_listed_at, listed_at),
    }
    if emergency is not None and state.emergency_at <= listed_at:
        changes["emergency"] = emergency
    return replace(state, **changes)
