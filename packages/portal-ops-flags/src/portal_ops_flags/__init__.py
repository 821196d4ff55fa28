"""portal-ops feature flags for apps: ``FlagClient`` evaluates in-process and stays current
from Redis; ``PortalOpsProvider`` is its OpenFeature provider (``[openfeature]`` extra).

Names load lazily, so an app that never uses OpenFeature never imports it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FlagClient": "client",
    "Context": "model",
    "Emergency": "model",
    "Flag": "model",
    "Resolution": "model",
    "bucket": "evaluate",
    "PortalOpsProvider": "provider",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
