"""Synthetic probes: an httpx request to each URL at an interval.

Probes measure uptime (probe successes) and runs of failed probes (the reference's
"health endpoint fails 3 consecutive probes" trigger). They count as traffic only when
they are the traffic source: with an access log or /metrics the probes' requests are
already in those numbers.
"""

from __future__ import annotations

import time

import httpx

from ..config import ProbesConfig
from ..window import Windows
from . import Recover, Warn, run_every

SOURCE = "probes"


class Prober:
    """Probes one URL (attributed to a host, or to none) until cancelled."""

    def __init__(
        self,
        url: str,
        host: str | None,
        config: ProbesConfig,
        windows: Windows,
        client: httpx.AsyncClient,
        warn: Warn,
        recover: Recover,
        as_traffic: bool = False,
    ) -> None:
        self.url = url
        self.host = host
        self.config = config
        self.windows = windows
        self.client = client
        self.warn = warn
        self.recover = recover
        self.as_traffic = as_traffic
        self.streak = 0  # failed probes in a row, across windows
        self.total = 0
        self.ok = 0
        self._problem = f"probe:{url}"

    async def probe_once(self) -> None:
        started = time.perf_counter()
        status = 0
        detail = ""
        try:
            response = await self.client.get(self.url, timeout=self.config.timeout_seconds)
            status = response.status_code
            ok = status <= self.config.ok_status_max
            if not ok:
                detail = f"HTTP {status}"
        except httpx.HTTPError as exc:
            ok = False
            detail = f"{type(exc).__name__}: {exc!s:.200}"
        ms = (time.perf_counter() - started) * 1000.0
        self.record(ok, status, ms)
        if ok:
            self.recover(self._problem)
        else:
            self.warn(self._problem, self.host, f"probe {self.url} failed: {detail}")

    def record(self, ok: bool, status: int, ms: float) -> None:
        self.total += 1
        self.streak = 0 if ok else self.streak + 1
        self.ok += ok
        tally = self.windows.tally(SOURCE, self.host)
        tally.probes += 1
        tally.probe_ok += ok
        tally.probe_failures = max(tally.probe_failures, self.streak)
        if self.as_traffic:  # the same tally: requests, errors and latency too
            tally.add(status, ms if status else None)

    async def run(self) -> None:
        await run_every(self.config.interval_seconds, self.probe_once)
