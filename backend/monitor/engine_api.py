"""What the deploy engine calls (through ``backend/monitor_bridge.py``).

- :func:`baseline`: before the switch (phase 6), watch ``baseline_seconds`` and store the
  baseline with the deployment, so phase 9 (or ``portal-ops monitor``) can compare.
- :func:`bake`: phase 9's monitoring window. A rollback rule that fires records its
  :class:`TriggerInfo` on the deployment (``deployment.monitor_trigger``, a dict) and
  fails the phase, so the engine's own failure path rolls back once, with the lock it
  holds. The engine should pass ``deployment.monitor_trigger`` as the rollback's
  ``trigger`` when it is set (the demo summary shows it as ``rollback.trigger``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..engine.run import PhaseFailed
from ..events import Severity
from .rules import TriggerInfo
from .runner import Monitor
from .store import SampleStore

if TYPE_CHECKING:
    from ..engine.deploy import Deployment

log = logging.getLogger(__name__)


def monitor_for(deployment: Deployment, *, auto_rollback: bool | None = None) -> Monitor:
    """A monitor on the deployment's active hosts, bus and journal file."""
    active = set(getattr(deployment, "active", deployment.hosts))
    hosts = {name: host for name, host in deployment.hosts.items() if name in active}
    store = SampleStore(deployment.engine.journal.path)

    async def on_trigger(info: TriggerInfo) -> None:
        deployment.monitor_trigger = info.to_dict()  # type: ignore[attr-defined]

    return Monitor(
        deployment.config,
        hosts,
        deployment.bus,
        deployment.deployment_id,
        on_trigger,
        auto_rollback=auto_rollback,
        store=store,
    )


async def baseline(deployment: Deployment, seconds: float | None = None) -> str:
    """Record the pre-switch baseline; returns a detail line for the phase."""
    monitor = monitor_for(deployment, auto_rollback=False)
    try:
        stats = await monitor.record_baseline(seconds)
    finally:
        await monitor.stop()
    total = stats.get("total")
    if total is None or not total.requests:
        return "baseline: no traffic seen"
    p95 = f"{total.p95:.0f} ms" if total.p95 is not None else "-"
    errors = f"{total.error_rate * 100:.2f}%" if total.error_rate is not None else "-"
    return f"baseline: {total.requests} requests, p95 {p95}, errors {errors}"


async def bake(deployment: Deployment, seconds: float | None = None) -> str:
    """Watch the new release for ``seconds`` (default ``[monitor] bake_seconds``); a firing
    rollback rule fails phase 9."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        # monitor_bridge.py imports this function under the name of its seconds variable
        seconds = deployment.config.monitor.bake_seconds
    monitor = monitor_for(deployment)
    try:
        monitor.load_baseline()
        report = await monitor.run(duration=seconds, stop_on_trigger=True)
    except Exception as exc:  # a broken monitor is news, not a reason to roll back
        log.exception("phase 9 monitoring failed")
        deployment.incident(Severity.WARNING, f"monitoring window failed: {exc}")
        return f"monitoring failed: {exc}"
    trigger = getattr(deployment, "monitor_trigger", None)
    where = report.paths[0] if report.paths else "not written"
    if trigger is not None:
        raise PhaseFailed(f"monitoring: {trigger['reason']} (report {where})")
    if report.trigger is not None:  # auto-rollback off: say so, and let the operator act
        return f"monitoring {report.verdict}: {report.trigger['reason']}; report {where}"
    return f"monitoring {report.verdict} over {report.windows} window(s); report {where}"
