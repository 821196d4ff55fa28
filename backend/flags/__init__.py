"""Feature flags: store, evaluation, overrides, kill switch, Redis publication, usage stats.

The names below load lazily, so ``backend.config`` (which imports ``flags.config``) and
``portal-ops feature list`` never pay for Redis, httpx or OpenFeature they do not use.
See docs/flags.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import FlagClient
    from .evaluate import bucket
    from .model import Context, Emergency, Flag, FlagError, Resolution, UnknownFlagError
    from .publish import verify_publication
    from .rollout import GradualRollout, RolloutResult
    from .service import Change, FlagRow, FlagService

_EXPORTS = {
    "FlagService": "service",
    "Change": "service",
    "FlagRow": "service",
    "FlagClient": "client",
    "GradualRollout": "rollout",
    "RolloutResult": "rollout",
    "bucket": "evaluate",
    "Flag": "model",
    "Context": "model",
    "Emergency": "model",
    "Resolution": "model",
    "FlagError": "model",
    "UnknownFlagError": "model",
    "verify_publication": "publish",  # validation check Q16 looks it up here
}

# (``evaluate`` is not re-exported: it is also the name of its module; import it from
# ``backend.flags.evaluate``.)
__all__ = [
    "Change",
    "Context",
    "Emergency",
    "Flag",
    "FlagClient",
    "FlagError",
    "FlagRow",
    "FlagService",
    "GradualRollout",
    "Resolution",
    "RolloutResult",
    "UnknownFlagError",
    "bucket",
    "verify_publication",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
