"""Phases 3 and 8 (and rollback phase 2): the release's feature flags in ``backend.flags``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .run import PhaseFailed

if TYPE_CHECKING:
    from .deploy import Deployment
    from .rollback import RollbackRun


async def prepare_flags(deployment: Deployment) -> str:
    names = deployment.config.flags.release_flags
    if not names:
        deployment.note("no release flags configured ([flags] release_flags)")
        return "skipped: no release flags configured"
    deployment.note(f"create release flags off: {', '.join(names)}")
    if deployment.dry_run:
        return f"{len(names)} flag(s) would be created off"
    from ..flags.engine_api import prepare_release_flags

    created = await prepare_release_flags(deployment)
    return f"{len(names)} release flag(s) ready, off ({created} new)"


async def gradual_rollout(deployment: Deployment) -> str:
    names = deployment.config.flags.release_flags
    if not names:
        deployment.note("no release flags to roll out")
        return "skipped: no release flags configured"
    steps = deployment.config.flags.rollout_steps
    deployment.note(
        f"roll out {', '.join(names)}: {' -> '.join(f'{s}%' for s in steps)},"
        f" each held {deployment.config.flags.rollout_hold:g}s and gated on health"
    )
    if deployment.dry_run:
        return "rollout would run here"
    from ..flags.engine_api import run_release_rollout

    ok, detail = await run_release_rollout(deployment)
    if not ok:
        raise PhaseFailed(detail)
    return detail


async def rollback_flags(run: RollbackRun) -> str:
    """Rollback phase 2: the release's flags off at once (and every flag, when the config
    asks for the kill switch on rollback)."""
    names = run.config.flags.release_flags
    kill_all = getattr(run.config.flags, "kill_switch_on_rollback", False)
    if not names and not kill_all:
        run.note("no release flags to disable")
        return "skipped: no release flags configured"
    what = "every flag (kill switch)" if kill_all else ", ".join(names)
    run.note(f"disable {what}")
    if run.dry_run:
        return f"would disable {what}"
    from ..flags.engine_api import disable_for_rollback

    return await disable_for_rollback(run, names, kill_all)
