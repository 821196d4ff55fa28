"""The monitor in the engine: the baseline before the first switch, phase 9's monitoring
window (whose rules may roll the deployment back by themselves), and the rollback that
``portal-ops monitor --auto-rollback`` starts, through ``backend.monitor.bake``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..run import PhaseFailed
from . import context_of

if TYPE_CHECKING:
    from ...config import Config
    from ...events import EventBus
    from ...journal import Journal
    from ...monitor.rules import TriggerInfo
    from ...monitor.runner import OnTrigger
    from ..deploy import Deployment


async def monitoring_window(deployment: Deployment) -> str:
    seconds = deployment.config.monitor.bake_seconds
    if seconds <= 0:
        return "no monitoring window configured ([monitor] bake_seconds)"
    deployment.note(f"watch health for {seconds:g}s; rules may roll back automatically")
    if deployment.dry_run:
        return f"monitoring window of {seconds:g}s would open"
    from ...monitor.bake import RollbackRuleFired, bake

    try:
        return await bake(context_of(deployment), seconds)
    except RollbackRuleFired as fired:
        # the failure path's rollback names the rule, its values and its window
        deployment.monitor_trigger = fired.trigger  # type: ignore[attr-defined]
        raise PhaseFailed(str(fired)) from None


async def record_baseline(deployment: Deployment) -> str | None:
    """Before the first host switches: the baseline the monitor compares the new release to."""
    monitor = deployment.config.monitor
    if monitor.bake_seconds <= 0 or monitor.baseline_seconds <= 0:
        return None
    deployment.note(f"record a {monitor.baseline_seconds:g}s health baseline before switching")
    if deployment.dry_run:
        return None
    from ...monitor.bake import baseline

    return await baseline(context_of(deployment))


def rollback_callback(
    config: Config, deployment_id: str | None, bus: EventBus, journal: Journal
) -> OnTrigger:
    """``on_trigger`` for ``portal-ops monitor --auto-rollback``: the engine's rollback of
    ``deployment_id``, naming the rule that fired."""

    async def on_trigger(info: TriggerInfo) -> Any:
        from ..front import Engine

        engine = Engine(config, bus=bus, journal=journal)
        return await engine.rollback(deployment_id, info.reason, trigger=info.to_dict())

    return on_trigger
