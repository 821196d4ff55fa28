"""What a subsystem (checks, flags, monitor) may know of, and do in, the run that calls it.

The engine's runs (a deployment, a rollback) are large objects that change with every
engine fix. The subsystems need a handful of their facts, so they take this protocol
instead of importing ``Deployment``/``RollbackRun``; ``backend/engine/adapters/`` builds it
from a run, one adapter per subsystem. Each member is here because a subsystem uses it;
what only one subsystem needs of one phase (the release to expect, the rollout's pause
control, a rollback's reason) is an argument of that call, not part of the context.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .config import Config
    from .events import Event, EventBus, Kind, Severity
    from .identity import Operator
    from .journal import Journal
    from .transport import Host


@runtime_checkable  # a test checks the engine's adapter provides every member
class RunContext(Protocol):
    @property
    def deployment_id(self) -> str:
        """The deployment the run is about: names check reports, flag audits, samples."""
        ...

    @property
    def config(self) -> Config:
        """The portal's configuration, as the run loaded it."""
        ...

    @property
    def hosts(self) -> Mapping[str, Host]:
        """The hosts the run acts on, connected and owned by the run (a subsystem runs its
        commands on them and never closes them); a deployment's hosts still in play."""
        ...

    @property
    def bus(self) -> EventBus:
        """Where a subsystem publishes its own events (check results, samples, flag
        changes), so the journal, the control room and the notifier see them."""
        ...

    @property
    def journal(self) -> Journal:
        """The run's journal: the flag store and the monitor's samples live in its file."""
        ...

    @property
    def operator(self) -> Operator:
        """Who runs it: flag changes are audited with this name."""
        ...

    def emit(self, kind: Kind, *, host: str | None = None, **data: Any) -> Event:
        """An event of the run itself (a rollout step line), stamped with its phase."""
        ...

    def incident(self, severity: Severity, message: str, **evidence: Any) -> None:
        """Something a person must know that does not stop the run (an unpublished flag
        change, a broken monitoring window)."""
        ...
