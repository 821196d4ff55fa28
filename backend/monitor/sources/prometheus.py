"""The app's Prometheus ``/metrics``: counters and histograms as deltas between scrapes.

The text exposition is parsed with prometheus_client's own parser. Each scrape is
compared with the previous one of the same target: a request counter labelled by status
gives requests, 5xx and 4xx; a histogram's cumulative buckets give latency quantiles
(``histogram_quantile``'s interpolation). A counter that went down was reset (the app
restarted): its new value is the delta, as Prometheus' ``rate()`` does. A series that
appears after the first scrape counts from zero (a first 500 creates its series).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ..config import PrometheusConfig
from ..window import Windows
from . import Recover, Warn, run_every

SOURCE = "prometheus"

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class ScrapeDelta:
    """What happened between two scrapes of one target."""

    requests: float = 0.0
    errors: float = 0.0
    client_errors: float = 0.0
    counter_found: bool = False  # the request counter was in the exposition
    status_known: bool = False  # ... with a status label: 5xx can be told apart
    buckets: dict[float, float] = field(default_factory=dict)  # ms upper bound -> cumulative
    histogram_count: float = 0.0
    first: bool = False  # the first scrape only sets the starting point


def _status_class(value: str) -> int:
    """``"503"``, ``"5xx"`` or ``"5XX"`` -> 5; unknown -> 0."""
    return int(value[0]) if value[:1].isdigit() else 0


class CounterState:
    """The previous scrape of one target, for deltas and reset detection."""

    def __init__(self, config: PrometheusConfig) -> None:
        self.config = config
        self.previous: dict[SeriesKey, float] | None = None

    def _delta(self, key: SeriesKey, value: float, previous: Mapping[SeriesKey, float]) -> float:
        before = previous.get(key)
        if before is None:
            return value  # a series born since the last scrape started at zero
        return value if value < before else value - before  # a reset: the app restarted

    def update(self, text: str) -> ScrapeDelta:
        """Parse one exposition and return the delta since the previous one."""
        c = self.config
        requests_names = {c.requests_metric, c.requests_metric + "_total"}
        bucket_name = c.latency_metric + "_bucket"
        count_name = c.latency_metric + "_count"
        match = c.match.items()
        current: dict[SeriesKey, float] = {}
        out = ScrapeDelta()
        previous = self.previous
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name = sample.name
                if name not in requests_names and name != bucket_name and name != count_name:
                    continue
                labels = sample.labels
                if any(labels.get(k) != v for k, v in match):
                    continue
                key: SeriesKey = (name, tuple(sorted(labels.items())))
                current[key] = sample.value
                if previous is None:
                    continue
                delta = self._delta(key, sample.value, previous)
                if name == bucket_name:
                    le = float(labels.get("le", "inf"))
                    bound = le * 1000.0 if not math.isinf(le) else le
                    out.buckets[bound] = out.buckets.get(bound, 0.0) + delta
                elif name == count_name:
                    out.histogram_count += delta
                else:
                    out.counter_found = True
                    out.requests += delta
                    if c.status_label in labels:
                        out.status_known = True
                    klass = _status_class(labels.get(c.status_label, ""))
                    if klass == 5:
                        out.errors += delta
                    elif klass == 4:
                        out.client_errors += delta
        if previous is None:
            out.first = True
        elif not out.counter_found:
            out.requests = out.histogram_count  # no counter: the histogram counts requests
        self.previous = current
        return out


def apply_delta(windows: Windows, host: str | None, delta: ScrapeDelta) -> None:
    """Add one scrape's delta to the open window."""
    if delta.first:
        return
    tally = windows.tally(SOURCE, host)
    tally.requests += round(delta.requests)
    tally.errors += round(delta.errors)
    tally.client_errors += round(delta.client_errors)
    if not delta.status_known:
        tally.status_known = False
    if delta.buckets:
        tally.digest.add_buckets(delta.buckets)


class PrometheusScraper:
    """Scrapes one target at an interval until cancelled."""

    def __init__(
        self,
        url: str,
        host: str | None,
        config: PrometheusConfig,
        windows: Windows,
        client: httpx.AsyncClient,
        warn: Warn,
        recover: Recover,
    ) -> None:
        self.url = url
        self.host = host
        self.config = config
        self.windows = windows
        self.client = client
        self.warn = warn
        self.recover = recover
        self.state = CounterState(config)
        self.scrapes = 0
        self._problem = f"prometheus:{url}"

    async def scrape_once(self) -> None:
        try:
            response = await self.client.get(self.url, timeout=self.config.timeout_seconds)
            response.raise_for_status()
            text = response.text
            delta = await asyncio.to_thread(self.state.update, text)
        except (httpx.HTTPError, ValueError) as exc:
            self.windows.tally(SOURCE, self.host).scrape_errors += 1
            self.warn(self._problem, self.host, f"scrape of {self.url} failed: {exc!s:.200}")
            return
        self.scrapes += 1
        self.recover(self._problem)
        apply_delta(self.windows, self.host, delta)

    async def run(self) -> None:
        await run_every(self.config.interval_seconds, self.scrape_once)
