"""Notifications: events rendered through templates and routed by severity to channels.

The engine builds one :class:`Notifier` from the config and attaches it to its event bus;
see docs/notify.md.
"""

from .catalog import EVENTS, SEED_EVENTS, NotifySeverity
from .config import NotifyConfig
from .notifier import DeliveryResult, Dispatch, Notifier, NotifyError, Preview

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
