"""Phase 9's monitoring window: the monitor watches the new release for a bake period and
its rules may roll the deployment back by themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .deploy import Deployment


async def monitoring_window(deployment: Deployment) -> str:
    seconds = deployment.config.monitor.bake_seconds
    if seconds <= 0:
        return "no monitoring window configured ([monitor] bake_seconds)"
    deployment.note(f"watch health for {seconds:g}s; rules may roll back automatically")
    if deployment.dry_run:
        return f"monitoring window of {seconds:g}s would open"
    from ..monitor.engine_api import bake

    return await bake(deployment, seconds)


async def record_baseline(deployment: Deployment) -> str | None:
    """Before the first host switches: the baseline the monitor compares the new release to."""
    monitor = deployment.config.monitor
    if monitor.bake_seconds <= 0 or monitor.baseline_seconds <= 0:
        return None
    deployment.note(f"record a {monitor.baseline_seconds:g}s health baseline before switching")
    if deployment.dry_run:
        return None
    from ..monitor.engine_api import baseline

    return await baseline(deployment)
