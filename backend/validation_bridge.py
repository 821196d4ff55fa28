"""Phases 1 and 7 (and rollback phase 9): the scored checks of ``backend.checks``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .run import PhaseFailed
from .traffic import health_url, wait_healthy

if TYPE_CHECKING:
    from .engine import Deployment


async def run_checks(deployment: Deployment, phase: str) -> str:
    """Run the pre or post checks on the deployment's own connections; no-go fails the phase
    unless ``--force`` (pre only) overrides it, which is recorded."""
    deployment.note(f"run the {phase}-deployment checks (see `portal-ops validate {phase}`)")
    if deployment.dry_run:
        return f"{phase}-deployment checks would run here"
    try:
        from .checks import run_validation
    except ImportError:
        return await basic_checks(deployment, phase)
    report = await run_validation(
        deployment.config,
        phase,  # type: ignore[arg-type]
        hosts={n: h for n, h in deployment.hosts.items() if n in deployment.active},
        deployment_id=deployment.deployment_id,
        bus=deployment.bus,
        release=deployment.release_id if phase == "post" else None,
        revision=deployment.resolved_revision or None,
        since=deployment.started,
    )
    line = f"score {report.score:.0f}/100, {report.decision}"
    if report.go:
        return line
    reasons = "; ".join(report.reasons[:5])
    if phase == "pre" and deployment.options.force:
        deployment.incident("warning", f"pre-deployment no-go overridden by --force: {reasons}")  # type: ignore[arg-type]
        return line + " (overridden by --force)"
    raise PhaseFailed(f"{line}: {reasons}")


async def basic_checks(deployment: Deployment, phase: str) -> str:
    """Without the checks package: hosts reachable and unlocked (pre), every host healthy
    (post). Says so, so nobody mistakes it for the scored validation."""
    if phase == "pre":
        return "basic: hosts reachable, lock taken (scored checks unavailable)"
    bad = []
    for name in deployment.active:
        url = health_url(deployment.config, deployment.host_config(name))
        if url:
            ok, detail = await wait_healthy(url, deployment.config.rollout.health_timeout)
            if not ok:
                bad.append(f"{name}: {detail}")
    if bad:
        raise PhaseFailed("health: " + "; ".join(bad))
    return f"basic: {len(deployment.active)} host(s) healthy (scored checks unavailable)"
