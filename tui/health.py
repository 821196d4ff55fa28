"""Live health: the room samples the portal's running sources itself, deployment or not.

The engine's monitor only samples while a deployment is in its monitored phases; a room
that drew only those samples showed old figures as if current (idle, during a manual
rollback, minutes after an automatic one). :class:`LiveHealth` runs the monitor's own
sources (probes, access log, Prometheus, HAProxy stats when configured) in a short window
that judges nothing and stores nothing, and hands each window's ``metric.sample`` events
(``run="live"``) to the room. Once live samples flow, the room draws them only (see
``tui.state._on_metric``), so the same window is never drawn twice.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from backend.config import Config
from backend.events import Event, EventBus, Kind

log = logging.getLogger(__name__)

LIVE_WINDOW_SECONDS = 2.0  # a sample every 2 s: "younger than a few seconds" on screen
LIVE_PROBE_SECONDS = 1.0  # probes at least once a second, so every window has some


def live_config(config: Config, window: float = LIVE_WINDOW_SECONDS) -> Config:
    """The config with a short window and probes fast enough to fill it."""
    monitor = config.monitor
    probes = replace(
        monitor.probes,
        interval_seconds=min(monitor.probes.interval_seconds, LIVE_PROBE_SECONDS),
    )
    prometheus = replace(
        monitor.prometheus, interval_seconds=min(monitor.prometheus.interval_seconds, window)
    )
    monitor = replace(monitor, window_seconds=window, probes=probes, prometheus=prometheus)
    return replace(config, monitor=monitor)


class LiveHealth:
    """Follows the portal's health sources and calls ``deliver(event)`` per live sample."""

    def __init__(
        self,
        config: Config,
        deliver: Callable[[Event], Any],
        *,
        hosts: dict[str, Any] | None = None,
        window: float = LIVE_WINDOW_SECONDS,
    ) -> None:
        from backend.monitor.runner import Monitor

        self.window = window
        self.deliver = deliver
        self.bus = EventBus()
        self.bus.subscribe(self._on_event)
        self.monitor = Monitor(
            live_config(config, window), hosts or {}, self.bus, "live", auto_rollback=False
        )

    @property
    def has_sources(self) -> bool:
        """Is there anything to sample? (no probe URL, no log, no metrics: nothing to show)"""
        return bool(self.monitor.traffic)

    def _on_event(self, event: Event) -> None:
        if str(event.kind) != Kind.METRIC_SAMPLE:
            return  # source problems show as a growing sample age, not as incidents
        self.deliver(replace(event, deployment_id=None, run="live", phase="live"))

    async def start(self) -> None:
        await self.monitor.follow(self.window)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.monitor.stop("stop")
