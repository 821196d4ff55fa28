"""What the deploy engine calls (through ``backend/flags_bridge.py``): phases 3 and 8 and
rollback phase 2, on top of :class:`FlagService` and :class:`GradualRollout`.

Flag changes are emitted on the run's bus (so the journal and the control room see them)
with the deployment id, the engine's operator and a reason naming the phase.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..events import Kind, Severity
from .gate import Gate, http_gate
from .model import FlagError
from .rollout import GradualRollout, StepUpdate
from .service import Change, FlagService

if TYPE_CHECKING:
    from ..engine.deploy import Deployment
    from ..engine.rollback import RollbackRun
    from ..engine.run import Run


def service_for(run: Deployment | RollbackRun) -> FlagService:
    """The flag service on the engine's journal file, its bus and its operator."""
    engine = run.engine
    return FlagService(
        engine.journal,
        run.config.redis.url,
        run.config.redis.prefix,
        bus=run.bus,
        operator=engine.operator,
    )


async def prepare_release_flags(deployment: Deployment) -> int:
    """Phase 3: the release's new flags, created off. Returns how many were new."""
    names = deployment.config.flags.release_flags
    with service_for(deployment) as service:
        changes = service.prepare_release_flags(names, deployment.deployment_id)
        _warn_unpublished(deployment, [c for c in changes if c.published is False])
    return sum(1 for c in changes if c.changed)


def release_gate(deployment: Deployment) -> Gate | None:
    """Every active host's health URL answers 2xx/3xx. None when no host has one."""
    from ..engine.traffic import health_url

    urls = [
        url
        for host in deployment.config.hosts
        if host.name in getattr(deployment, "active", [host.name])
        and (url := health_url(deployment.config, host))
    ]
    return http_gate(urls, timeout=deployment.config.flags.gate_timeout) if urls else None


async def run_release_rollout(deployment: Deployment, gate: Gate | None = None) -> tuple[bool, str]:
    """Phase 8: each release flag in turn, 10 -> 50 -> 100 %, held and gated on health.

    Stops at the first flag whose gate fails (that flag is stepped back; the ones after
    it stay off). ``gate`` defaults to :func:`release_gate`.
    """
    cfg = deployment.config.flags
    gate = gate or release_gate(deployment)
    done: list[str] = []
    with service_for(deployment) as service:
        for name in cfg.release_flags:

            def on_step(update: StepUpdate) -> None:
                deployment.emit(
                    Kind.STEP_OUTPUT,
                    step="flag-rollout",
                    stream="flags",
                    line=f"{update.flag} {update.percentage}% {update.status}: {update.detail}",
                )

            rollout = GradualRollout(
                service,
                name,
                cfg.rollout_steps,
                cfg.rollout_hold,
                gate,
                on_step,
                check_interval=cfg.rollout_check_interval,
                gate_timeout=cfg.gate_timeout,
                reason=f"deployment {deployment.deployment_id} phase 8",
                deployment_id=deployment.deployment_id,
                control=deployment.engine.rollout_control,
            )
            result = await rollout.run()
            if not result.ok:
                return False, f"{name}: {result.status}: {result.reason}"
            done.append(f"{name} {result.final[1]}%")
    gated = "gated on health" if gate else "NOT gated: no host has a health URL"
    return True, f"rolled out {', '.join(done)} ({gated})"


async def disable_for_rollback(run: RollbackRun, names: list[str], kill_all: bool) -> str:
    """Rollback phase 2: the release's flags off, or every flag (the kill switch).

    Never raises for a flag problem: a rollback must go on; unpublished changes become
    an incident so someone re-publishes them (``portal-ops feature publish``).
    """
    reason = f"rollback of {run.deployment_id}: {run.reason}"
    with service_for(run) as service:
        if kill_all:
            change = service.emergency_disable(reason, deployment_id=run.deployment_id)
            _warn_unpublished(run, [change] if change.published is False else [])
            state = "switched on" if change.changed else "already on"
            return f"kill switch {state}: every flag off for everyone"
        changed, missing, unpublished = [], [], []
        for name in names:
            try:
                change = service.disable(name, reason=reason, deployment_id=run.deployment_id)
            except FlagError:
                missing.append(name)
                continue
            if change.changed:
                changed.append(name)
            if change.published is False:
                unpublished.append(change)
        _warn_unpublished(run, unpublished)
        out = f"disabled {', '.join(changed) or 'nothing (already off)'}"
        if missing:
            out += f"; unknown: {', '.join(missing)}"
        return out


def _warn_unpublished(run: Run, changes: list[Change]) -> None:
    if not changes:
        return
    errors = sorted({c.publication.error for c in changes if c.publication})
    run.incident(
        Severity.ERROR,
        "flag change saved but NOT published to Redis: apps still serve the old values;"
        " run `portal-ops feature publish` once Redis is back",
        flags=[c.flag for c in changes],
        errors=errors,
    )
