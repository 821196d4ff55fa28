"""The monitor as a step of a run: the baseline recorded before the switch and the
monitoring window (bake) of phase 9. The engine calls these through
``backend/engine/adapters/monitor.py`` with a :class:`backend.context.RunContext`.

- :func:`baseline`: before the switch (phase 6), watch ``baseline_seconds`` and store the
  baseline with the deployment, so phase 9 (or ``portal-ops monitor``) can compare.
- :func:`bake`: phase 9's monitoring window. A rollback rule that fires raises
  :class:`RollbackRuleFired` with its :class:`TriggerInfo` (as a dict), so the engine's
  own failure path rolls back once, with the lock it holds, naming the rule as the
  rollback's ``trigger`` (the demo summary shows it as ``rollback.trigger``).
"""

from __future__ import annotations

import logging
from typing import Any

from ..context import RunContext
from ..events import Severity
from .rules import TriggerInfo
from .runner import Monitor, OnTrigger
from .store import SampleStore

log = logging.getLogger(__name__)


class RollbackRuleFired(Exception):
    """A rollback rule fired during the monitoring window: the run must roll back."""

    def __init__(self, message: str, trigger: dict[str, Any]) -> None:
        super().__init__(message)
        self.trigger = trigger


def monitor_for(
    run: RunContext, on_trigger: OnTrigger | None = None, *, auto_rollback: bool | None = None
) -> Monitor:
    """A monitor on the run's hosts, bus and journal file."""
    return Monitor(
        run.config,
        dict(run.hosts),
        run.bus,
        run.deployment_id,
        on_trigger,
        auto_rollback=auto_rollback,
        store=SampleStore(run.journal.path),
    )


async def baseline(run: RunContext, seconds: float | None = None) -> str:
    """Record the pre-switch baseline; returns a detail line for the phase."""
    monitor = monitor_for(run, auto_rollback=False)
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


async def bake(run: RunContext, seconds: float) -> str:
    """Watch the new release for ``seconds``; a firing rollback rule raises
    :class:`RollbackRuleFired`. A broken monitor is news (an incident), not a reason to
    roll back."""
    fired: list[dict[str, Any]] = []

    async def on_trigger(info: TriggerInfo) -> None:
        fired.append(info.to_dict())

    monitor = monitor_for(run, on_trigger)
    try:
        monitor.load_baseline()
        report = await monitor.run(duration=seconds, stop_on_trigger=True)
    except Exception as exc:
        log.exception("phase 9 monitoring failed")
        run.incident(Severity.WARNING, f"monitoring window failed: {exc}")
        return f"monitoring failed: {exc}"
    where = report.paths[0] if report.paths else "not written"
    if fired:
        trigger = fired[0]
        raise RollbackRuleFired(f"monitoring: {trigger['reason']} (report {where})", trigger)
    if report.trigger is not None:  # auto-rollback off: say so, and let the operator act
        return f"monitoring {report.verdict}: {report.trigger['reason']}; report {where}"
    return f"monitoring {report.verdict} over {report.windows} window(s); report {where}"
