"""The checks in the engine: deploy phases 1 and 7 (pre and post checks) and rollback
phase 9's verification, on the run's own connections."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ...checks import run_validation, validate_run
from ...checks.release import version_key_problems as version_key_problems
from ..run import PhaseFailed
from . import context_of

if TYPE_CHECKING:
    from ...checks import ValidationReport
    from ...config import Config
    from ..deploy import Deployment
    from ..rollback import RollbackRun


async def run_checks(deployment: Deployment, phase: str) -> str:
    """Run the pre or post checks on the deployment's hosts in play; no-go fails the phase
    unless ``--force`` (pre only) overrides it, which is recorded."""
    deployment.note(f"run the {phase}-deployment checks (see `portal-ops validate {phase}`)")
    if deployment.dry_run:
        return f"{phase}-deployment checks would run here"
    report = await validate_run(
        context_of(deployment),
        phase,  # type: ignore[arg-type]
        release=deployment.release_id if phase == "post" else None,
        revision=deployment.resolved_revision or deployment.revision,
        # new errors in the app log count from the switch, not from the deployment's start
        since=deployment.switch_started or deployment.started,
        # Q05/Q06 judged against what they measured before the switch (batch analysis)
        baseline=getattr(deployment, "web_baseline", None) if phase == "post" else None,
        # phase 1 took these locks in its own first script: P15 needs no second read
        locked=deployment.lock_taken if phase == "pre" and not deployment.dry_run else (),
    )
    line = f"score {report.score:.0f}/100, {report.decision}"
    if report.go:
        return line
    reasons = "; ".join(report.reasons[:5])
    if phase == "pre" and deployment.options.force:
        deployment.incident("warning", f"pre-deployment no-go overridden by --force: {reasons}")  # type: ignore[arg-type]
        return line + " (overridden by --force)"
    raise PhaseFailed(f"{line}: {reasons}")


async def verify_release(run: RollbackRun, release: str, only: Iterable[str]) -> ValidationReport:
    """Rollback phase 9: the post checks ``only`` against ``release`` on the reachable
    hosts; results stay off the bus and the deployment's own report stays as it was."""
    return await validate_run(
        context_of(run, run.reachable()),
        "post",
        release=release,
        only=only,
        store_report=False,
        publish=False,
    )


async def measure_web(config: Config, ids: list[str]) -> ValidationReport:
    """The web checks ``ids`` (Q05 p95, Q06 error rate) on the live release, from this
    machine only: the batch analysis's baseline, taken before the first host switches."""
    return await run_validation(config, "post", hosts={}, only=ids, store_report=False, bus=None)
