"""Notifications: events rendered through templates and routed by severity to channels.

The engine builds one :class:`Notifier` from the config and attaches it to its event bus;
see docs/notify.md. ``backend.config`` imports this package for ``NotifyConfig``, so the
delivery machinery (httpx, aiosmtplib, jinja2) loads lazily, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .catalog import EVENTS, SEED_EVENTS, NotifySeverity
from .config import NotifyConfig

if TYPE_CHECKING:
    from .notifier import DeliveryResult, Dispatch, Notifier, NotifyError, Preview

_LAZY = {"DeliveryResult", "Dispatch", "Notifier", "NotifyError", "Preview"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import notifier

        return getattr(notifier, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EVENTS",
    "SEED_EVENTS",
    "DeliveryResult",
    "Dispatch",
    "Notifier",
    "NotifyConfig",
    "NotifyError",
    "NotifySeverity",
    "Preview",
]
