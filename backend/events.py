"""The one typed event stream every front subscribes to.

Everything the engine, the checks, the flags and the monitor do is an :class:`Event`. The
journal writes each one as it happens; the CLI printer, the Textual control room, the
notifier and watchers in other processes are subscribers. Nothing reads engine internals.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from .redact import redact_data

log = logging.getLogger(__name__)


class Kind(StrEnum):
    DEPLOYMENT_STARTED = (
        "deployment.started"  # data: target, revision, release, operator, hosts, flags
    )
    DEPLOYMENT_FINISHED = "deployment.finished"  # data: outcome, seconds, summary
    PHASE_STARTED = "phase.started"  # phase; data: number, title
    PHASE_FINISHED = "phase.finished"  # phase; data: status, seconds, detail
    STEP_STARTED = "step.started"  # phase, host; data: step, command
    STEP_OUTPUT = "step.output"  # phase, host; data: stream, line
    STEP_FINISHED = "step.finished"  # phase, host; data: step, exit_status, seconds, ok
    HOST_STATE = "host.state"  # host; data: state, release
    LOCK = "lock"  # data: action (acquired|released|refused), holder
    CHECK_RESULT = "check.result"  # phase (validate-pre|validate-post); host; data: the check
    CHECK_SUMMARY = "check.summary"  # data: score, decision, reasons, counts
    METRIC_SAMPLE = "metric.sample"  # host; data: p50, p95, p99, error_rate, rps, requests
    FLAG_CHANGED = "flag.changed"  # data: flag, change, before, after, reason, operator
    INCIDENT = "incident"  # data: severity (info|warning|error|critical), message, evidence
    ROLLBACK_STARTED = "rollback.started"  # data: reason, trigger, target release per host
    ROLLBACK_FINISHED = "rollback.finished"  # data: outcome, seconds, hosts
    NOTIFICATION = "notification"  # data: channel, event, attempt, ok, detail (no secrets)


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Event:
    kind: str
    deployment_id: str | None = None
    run: str = "deploy"  # deploy | rollback | monitor | flags | validate | notify
    phase: str | None = None
    host: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)
    seq: int = 0  # the journal's sequence number, 0 until written

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Event:
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


Subscriber = Callable[[Event], Any]


class EventBus:
    """Fan-out of events to synchronous callbacks and asyncio queues, in emit order.

    ``emit`` is synchronous so that ordering is the order things happened; a subscriber that
    raises is logged and dropped from that event, never allowed to stop the engine.
    The first subscriber may return a replacement event (the journal stamps ``seq``).
    """

    def __init__(self) -> None:
        self._stamper: Callable[[Event], Event] | None = None
        self._callbacks: list[Subscriber] = []
        self._queues: list[asyncio.Queue[Event]] = []

    def set_stamper(self, stamper: Callable[[Event], Event]) -> None:
        """The journal: writes the event and returns it with its sequence number."""
        self._stamper = stamper

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    def queue(self, maxsize: int = 0) -> asyncio.Queue[Event]:
        q: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)
        self._queues.append(q)
        return q

    def unqueue(self, q: asyncio.Queue[Event]) -> None:
        if q in self._queues:
            self._queues.remove(q)

    def emit(self, event: Event) -> Event:
        event = replace(event, data=redact_data(event.data))  # before journal, printers, feed
        if self._stamper is not None:
            event = self._stamper(event)
        for callback in list(self._callbacks):
            try:
                callback(event)
            except Exception:  # a broken subscriber never stops a deployment or rollback
                log.exception("event subscriber %r failed on %s", callback, event.kind)
        for q in list(self._queues):
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("event queue full; dropping %s for a slow consumer", event.kind)
        return event
