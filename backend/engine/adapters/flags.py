"""The release's feature flags in the engine: deploy phases 3 (created off) and 8
(gradual rollout) and rollback phase 2 (off at once), through ``backend.flags.release``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..run import PhaseFailed
from . import context_of

if TYPE_CHECKING:
    from ..deploy import Deployment
    from ..rollback import RollbackRun


async def prepare_flags(deployment: Deployment) -> str:
    names = deployment.config.flags.release_flags
    if not names:
        deployment.note("no release flags configured ([flags] release_flags)")
        return "skipped: no release flags configured"
    deployment.note(f"create release flags off: {', '.join(names)}")
    if deployment.dry_run:
        return f"{len(names)} flag(s) would be created off"
    from ...flags.release import prepare_release_flags

    created = await prepare_release_flags(context_of(deployment))
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
    from ...flags.release import run_release_rollout

    ok, detail = await run_release_rollout(
        context_of(deployment), control=deployment.engine.rollout_control
    )
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
    from ...flags.release import disable_for_rollback

    return await disable_for_rollback(context_of(run), names, kill_all, run.reason)
