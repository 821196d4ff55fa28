"""The deploy engine: the one front door every front uses.

The CLI, the control room, the demo and the tests all call :class:`Engine`: deploy (the
nine phases, :mod:`backend.deployment`), plan (the dry-run), resume, rollback (the ten
phases, :mod:`backend.rollback`), pause/resume of the gradual rollout. Everything it does
is an event on its bus, and so in the journal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..config import Config, HostConfig
from ..events import EventBus, Severity
from ..identity import Operator, current_operator
from ..ids import new_deployment_id
from ..journal import Journal
from ..paths import state_dir
from ..phases import DEPLOY_PHASES
from ..transport import Host, make_host
from .deploy import Deployment, DeploymentResult, DeployOptions
from .run import Plan

if TYPE_CHECKING:
    from ..flags.rollout import RolloutControl

__all__ = ["DEPLOY_PHASES", "DeployOptions", "Deployment", "DeploymentResult", "Engine"]


class Engine:
    def __init__(
        self,
        config: Config,
        *,
        bus: EventBus | None = None,
        journal: Journal | None = None,
        operator: Operator | None = None,
        host_factory: Callable[[Config, HostConfig], Host] | None = None,
    ) -> None:
        self.config = config
        self.host_factory = host_factory or make_host
        self.journal = journal or Journal(state_dir(config.state.dir) / "journal.db")
        self.journal.batch_writes()  # every output line a queue put, not a commit on the loop
        self.bus = bus or EventBus()
        self.bus.set_stamper(self.journal.record)
        self.operator = operator or current_operator()
        self.current: Deployment | None = None

    @cached_property
    def rollout_control(self) -> RolloutControl:
        """Built on first use: importing the flags (Redis) is not every front's business."""
        from ..flags.rollout import RolloutControl

        return RolloutControl()

    def make_hosts(self, names: list[str] | None = None) -> dict[str, Host]:
        chosen = [h for h in self.config.hosts if names is None or h.name in names]
        return {h.name: self.host_factory(self.config, h) for h in chosen}

    async def deploy(
        self,
        *,
        revision: str | None = None,
        dry_run: bool = False,
        force: bool = False,
        skip_validation: bool = False,
    ) -> DeploymentResult:
        options = DeployOptions(revision, dry_run, force, skip_validation, self.config.limit)
        # unique across machines; phase 1 also refuses one that exists on any host
        release_id = new_deployment_id(self.journal.deployment_ids())
        deployment_id = f"dry-{release_id}" if dry_run else release_id
        deployment = Deployment(self, deployment_id, release_id, options)
        self.current = deployment
        try:
            return await deployment.execute()
        finally:
            self.current = None
            await self.flush_journal()

    async def flush_journal(self) -> None:
        """Wait, off the loop, until the run's events are in the journal (other processes
        reading it, a watcher, see the end of the run when the call returns)."""
        await asyncio.to_thread(self.journal.flush, 30)

    def pause_rollout(self) -> bool:
        """Pause the running gradual rollout (phase 8), or resume it; the new state.

        A paused step stays held and health-gated; the next step waits for the resume.
        """
        paused = self.rollout_control.toggle()
        if self.current is not None:
            self.current.incident(
                Severity.WARNING if paused else Severity.INFO,
                f"gradual rollout {'paused' if paused else 'resumed'} by {self.operator}",
            )
        return paused

    async def plan(self, revision: str | None = None) -> Plan:
        """The dry-run's plan: every command a real run would execute, per host and phase."""
        result = await self.deploy(revision=revision, dry_run=True)
        assert result.plan is not None
        return result.plan

    async def resume(self, deployment_id: str) -> DeploymentResult:
        from .resume import resume_deployment

        try:
            return await resume_deployment(self, deployment_id)
        finally:
            await self.flush_journal()

    async def rollback(
        self,
        deployment_id: str | None = None,
        reason: str = "",
        *,
        trigger: dict[str, Any] | None = None,
        dry_run: bool = False,
        force: bool = False,
        restore_dump: bool = False,
    ) -> Any:
        from .rollback import rollback_deployment

        try:
            return await rollback_deployment(
                self,
                deployment_id,
                reason,
                trigger=trigger or {"kind": "manual"},
                dry_run=dry_run,
                force=force,
                restore_dump=restore_dump,
            )
        finally:
            await self.flush_journal()
