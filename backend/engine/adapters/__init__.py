"""The engine's side of each subsystem: one adapter per subsystem (checks, flags, monitor)
turns a run into a :class:`backend.context.RunContext`, calls the subsystem, and speaks
the engine's language back (plan notes, dry runs, :class:`PhaseFailed`).

Notify needs none: it subscribes to the event bus (``backend.notify.bridge``) and the
engine never calls it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...config import Config
    from ...context import RunContext
    from ...events import Event, EventBus, Kind, Severity
    from ...identity import Operator
    from ...journal import Journal
    from ...transport import Host
    from ..deploy import Deployment
    from ..rollback import RollbackRun


@dataclass(frozen=True)
class RunView:
    """A :class:`RunContext` over a deployment or a rollback: its facts, read live, and
    only the hosts given (a deployment's hosts still in play)."""

    run: Deployment | RollbackRun
    hosts: Mapping[str, Host]

    @property
    def deployment_id(self) -> str:
        return self.run.deployment_id

    @property
    def config(self) -> Config:
        return self.run.config

    @property
    def bus(self) -> EventBus:
        return self.run.bus

    @property
    def journal(self) -> Journal:
        return self.run.engine.journal

    @property
    def operator(self) -> Operator:
        return self.run.engine.operator

    def emit(self, kind: Kind, *, host: str | None = None, **data: Any) -> Event:
        return self.run.emit(kind, host=host, **data)

    def incident(self, severity: Severity, message: str, **evidence: Any) -> None:
        self.run.incident(severity, message, **evidence)


def context_of(run: Deployment | RollbackRun, names: list[str] | None = None) -> RunContext:
    """The run as a subsystem sees it, on ``names`` (default: a deployment's active hosts,
    a rollback's hosts)."""
    chosen = set(getattr(run, "active", run.hosts) if names is None else names)
    return RunView(run, {n: h for n, h in run.hosts.items() if n in chosen})
