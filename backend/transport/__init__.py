"""Transports: one interface (:class:`Host`) over SSH (asyncssh) and local subprocesses."""

from .base import (
    CommandResult,
    CommandTimeout,
    ConnectionLost,
    Host,
    HostKeyMismatch,
    HostUnreachable,
    LineCallback,
    TransportError,
)
from .factory import connect_all, make_host

__all__ = [
    "CommandResult",
    "CommandTimeout",
    "ConnectionLost",
    "Host",
    "HostKeyMismatch",
    "HostUnreachable",
    "LineCallback",
    "TransportError",
    "connect_all",
    "make_host",
]
