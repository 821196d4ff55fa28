"""Phases 1 and 7 (and rollback phase 9): the scored checks of ``backend.checks``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .run import PhaseFailed

if TYPE_CHECKING:
    from .deploy import Deployment


async def run_checks(deployment: Deployment, phase: str) -> str:
    """Run the pre or post checks on the deployment's own connections; no-go fails the phase
    unless ``--force`` (pre only) overrides it, which is recorded."""
    deployment.note(f"run the {phase}-deployment checks (see `portal-ops validate {phase}`)")
    if deployment.dry_run:
        return f"{phase}-deployment checks would run here"
    from ..checks import run_validation

    report = await run_validation(
        deployment.config,
        phase,  # type: ignore[arg-type]
        hosts={n: h for n, h in deployment.hosts.items() if n in deployment.active},
        deployment_id=deployment.deployment_id,
        bus=deployment.bus,
        release=deployment.release_id if phase == "post" else None,
        revision=deployment.resolved_revision or deployment.revision,
        # new errors in the app log count from the switch, not from the deployment's start
        since=deployment.switch_started or deployment.started,
        # Q05/Q06 judged against what they measured before the switch (batch analysis)
        baseline=getattr(deployment, "web_baseline", None) if phase == "post" else None,
    )
    line = f"score {report.score:.0f}/100, {report.decision}"
    if report.go:
        return line
    reasons = "; ".join(report.reasons[:5])
    if phase == "pre" and deployment.options.force:
        deployment.incident("warning", f"pre-deployment no-go overridden by --force: {reasons}")  # type: ignore[arg-type]
        return line + " (overridden by --force)"
    raise PhaseFailed(f"{line}: {reasons}")
