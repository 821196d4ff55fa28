"""Live monitoring: metric sources, rolling windows, rules that trigger rollback.

``Monitor`` (runner) is the entry point; ``TriggerInfo`` is what a firing rule hands to
the rollback; ``MonitorReport`` is the before/after report; ``SampleStore`` the history.
Exports load lazily: ``backend.config`` imports ``backend.monitor.config`` at start-up,
and the runner imports ``backend.config`` in turn.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Monitor": "runner",
    "OnTrigger": "runner",
    "MonitorReport": "report",
    "TriggerInfo": "rules",
    "SampleStore": "store",
    "TOTAL": "window",
    "WindowStats": "window",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(name)
