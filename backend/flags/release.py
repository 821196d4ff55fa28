"""A release's flags across a run: created off (deploy phase 3), rolled out gated on
health (phase 8), switched off on rollback (rollback phase 2), on top of
:class:`FlagService` and :class:`GradualRollout`. The engine calls these through
``backend/engine/adapters/flags.py`` with a :class:`backend.context.RunContext`.

Flag changes are emitted on the run's bus (so the journal and the control room see them)
with the deployment id, the run's operator and a reason naming the phase.
"""

from __future__ import annotations

from ..context import RunContext
from ..events import Kind, Severity
from ..health import health_url
from .gate import Gate, http_gate
from .model import FlagError
from .rollout import GradualRollout, RolloutControl, StepUpdate
from .service import Change, FlagService


def service_for(run: RunContext) -> FlagService:
    """The flag service on the run's journal file, its bus and its operator."""
    return FlagService(
        run.journal,
        run.config.redis.url,
        run.config.redis.prefix,
        bus=run.bus,
        operator=run.operator,
    )


async def prepare_release_flags(deployment: RunContext) -> int:
    """Phase 3: the release's new flags, created off. Returns how many were new."""
    names = deployment.config.flags.release_flags
    with service_for(deployment) as service:
        changes = service.prepare_release_flags(names, deployment.deployment_id)
        _warn_unpublished(deployment, [c for c in changes if c.published is False])
    return sum(1 for c in changes if c.changed)


def release_gate(deployment: RunContext) -> Gate | None:
    """Every host in play answers 2xx/3xx on its health URL. None when no host has one."""
    urls = [
        url
        for host in deployment.config.hosts
        if host.name in deployment.hosts and (url := health_url(deployment.config, host))
    ]
    return http_gate(urls, timeout=deployment.config.flags.gate_timeout) if urls else None


async def run_release_rollout(
    deployment: RunContext, gate: Gate | None = None, control: RolloutControl | None = None
) -> tuple[bool, str]:
    """Phase 8: each release flag in turn, 10 -> 50 -> 100 %, held and gated on health.

    Stops at the first flag whose gate fails (that flag is stepped back; the ones after
    it stay off). ``gate`` defaults to :func:`release_gate`; ``control`` is the operator's
    pause/resume of the rollout (the control room's key).
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
                control=control,
            )
            result = await rollout.run()
            if not result.ok:
                return False, f"{name}: {result.status}: {result.reason}"
            done.append(f"{name} {result.final[1]}%")
    gated = "gated on health" if gate else "NOT gated: no host has a health URL"
    return True, f"rolled out {', '.join(done)} ({gated})"


async def disable_for_rollback(run: RunContext, names: list[str], kill_all: bool, why: str) -> str:
    """Rollback phase 2: the release's flags off, or every flag (the kill switch); ``why``
    is the rollback's reason, recorded with each change.

    Never raises for a flag problem: a rollback must go on; unpublished changes become
    an incident so someone re-publishes them (``portal-ops feature publish``).
    """
    reason = f"rollback of {run.deployment_id}: {why}"
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


def _warn_unpublished(run: RunContext, changes: list[Change]) -> None:
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
