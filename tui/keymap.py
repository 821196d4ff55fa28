"""The user's keymap: ``[ui.keys]`` in portal-ops.toml, keyed by the registry's ids.

``wrap = "x"`` moves the wrap toggle to ``x``; several keys are comma separated. An id
that does not exist, or a key that another action keeps, is a configuration error naming
both (exit 2), never a silently dead key.
"""

from __future__ import annotations

from collections.abc import Mapping

from .actions import ACTIONS

PREFIX = "portal-ops."
#: bindings of panes and dialogs that are not in the registry but can be remapped too
WIDGET_IDS = ("log-up", "log-down", "log-detail", "detail-close")


class KeymapError(ValueError):
    """A ``[ui.keys]`` entry that cannot work."""


def _keys(raw: str) -> list[str]:
    return [k.strip() for k in raw.split(",") if k.strip()]


def keymap_for(keys: Mapping[str, str]) -> dict[str, str]:
    """Textual's keymap (binding id -> keys) for ``[ui.keys]``; raises KeymapError."""
    known = {a.id: a for a in ACTIONS}
    taken: dict[str, str] = {}
    for action in ACTIONS:
        if action.id in keys:
            continue  # remapped: its default keys are free
        for key in _keys(action.keys):
            taken[key] = action.id
    out: dict[str, str] = {}
    for binding_id, raw in keys.items():
        if binding_id not in known and binding_id not in WIDGET_IDS:
            ids = ", ".join([*known, *WIDGET_IDS])
            raise KeymapError(f"[ui.keys] {binding_id}: no such binding id (known: {ids})")
        wanted = _keys(str(raw))
        if not wanted:
            raise KeymapError(f"[ui.keys] {binding_id}: no key given")
        for key in wanted:
            owner = taken.get(key)
            if owner is not None and owner != binding_id:
                raise KeymapError(
                    f"[ui.keys] {binding_id}: key {key!r} is taken by {owner}"
                    f" (remap {owner} too, or pick another key)"
                )
            taken[key] = binding_id
        out[PREFIX + binding_id] = ",".join(wanted)
    return out
