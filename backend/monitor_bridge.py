"""Phase 9's monitoring window: the monitor watches the new release for a bake period and
its rules may roll the deployment back by themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import Deployment


async def monitoring_window(deployment: Deployment) -> str:
    bake = getattr(deployment.config.monitor, "bake_seconds", 0) or 0
    if bake <= 0:
        return "no monitoring window configured ([monitor] bake_seconds)"
    deployment.note(f"watch health for {bake:g}s; rules may roll back automatically")
    if deployment.dry_run:
        return f"monitoring window of {bake:g}s would open"
    from .monitor.engine_api import bake

    return await bake(deployment, bake)
