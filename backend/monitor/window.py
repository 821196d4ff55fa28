"""Tumbling windows: what the sources count between two window boundaries, and its summary.

Sources add observations to a :class:`Tally` per (source, host) in the current window; at
each boundary the runner rotates the windows and :func:`summarize` turns the closed
tallies into :class:`WindowStats` per host and in total. Everything here runs on the event
loop thread (sources call in from callbacks), so there is no locking.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

TOTAL = "total"  # the host label of the all-hosts summary (samples table, event data)
SOURCES = ("haproxy", "access_log", "prometheus", "probes")
MAX_VALUES = 400_000  # latencies kept per digest; beyond this a uniform subsample


class Digest:
    """Latencies (ms) of a window: exact values (access log, probes) or the deltas of a
    Prometheus histogram's cumulative buckets. Quantiles are exact for values and
    interpolated within buckets (as ``histogram_quantile`` does) for histograms.
    """

    __slots__ = ("buckets", "stride", "values")

    def __init__(self) -> None:
        self.values: array[float] = array("d")
        self.buckets: dict[float, float] = {}  # upper bound (ms, inf) -> cumulative count
        self.stride = 1  # every stride-th value kept (long aggregates stay bounded)

    def add_buckets(self, cumulative: Mapping[float, float]) -> None:
        for le, count in cumulative.items():
            self.buckets[le] = self.buckets.get(le, 0.0) + count

    def merge(self, other: Digest) -> None:
        if other.values:
            step = max(1, self.stride // other.stride)
            self.values.extend(other.values[::step] if step > 1 else other.values)
            while len(self.values) > MAX_VALUES:
                self.values = self.values[::2]
                self.stride *= 2
        if other.buckets:
            self.add_buckets(other.buckets)

    def __bool__(self) -> bool:
        return bool(self.values) or self._bucket_total() > 0

    def _bucket_total(self) -> float:
        return max(self.buckets.values(), default=0.0)

    def quantile(self, q: float) -> float | None:
        if self.values:
            return _exact_quantile(sorted(self.values), q)
        if self._bucket_total() > 0:
            return bucket_quantile(self.buckets, q)
        return None

    def quantiles(self, qs: Iterable[float]) -> list[float | None]:
        if self.values:
            ordered = sorted(self.values)
            return [_exact_quantile(ordered, q) for q in qs]
        return [self.quantile(q) for q in qs]


def _exact_quantile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def bucket_quantile(cumulative: Mapping[float, float], q: float) -> float | None:
    """Prometheus ``histogram_quantile`` over cumulative bucket counts keyed by upper bound.

    Linear interpolation inside the bucket holding the rank; a rank in the +Inf bucket
    answers the highest finite bound, the first bucket starts at 0.
    """
    bounds = sorted(cumulative)
    if not bounds:
        return None
    total = cumulative[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank and count > prev_count:
            if math.isinf(bound):
                return prev_bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound if not math.isinf(bound) else prev_bound, count
    return prev_bound


class Tally:
    """Counts of one source on one host (or unattributed) in one window."""

    __slots__ = (
        "client_errors",
        "digest",
        "errors",
        "probe_failures",
        "probe_ok",
        "probes",
        "requests",
        "scrape_errors",
        "status_known",
        "unparsed",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0  # 5xx (and, for probes, no answer at all)
        self.client_errors = 0  # 4xx: counted in requests, never as errors
        self.digest = Digest()
        self.status_known = True  # False when /metrics has no status-labelled counter
        self.unparsed = 0
        self.scrape_errors = 0
        self.probes = 0
        self.probe_ok = 0
        self.probe_failures = 0  # the longest run of failed probes seen in the window

    def add(self, status: int, ms: float | None) -> None:
        """One request: the hot path of the access-log follower."""
        self.requests += 1
        if status >= 500 or status == 0:
            self.errors += 1
        elif status >= 400:
            self.client_errors += 1
        if ms is not None:
            self.digest.values.append(ms)

    def merge(self, other: Tally) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.client_errors += other.client_errors
        self.digest.merge(other.digest)
        self.status_known = self.status_known and other.status_known
        self.unparsed += other.unparsed
        self.scrape_errors += other.scrape_errors
        self.probes += other.probes
        self.probe_ok += other.probe_ok
        self.probe_failures = max(self.probe_failures, other.probe_failures)


Key = tuple[str, str | None]  # (source, host name or None for unattributed)


class Windows:
    """The open window's tallies; ``rotate`` closes it and opens the next."""

    def __init__(self) -> None:
        self.current: dict[Key, Tally] = {}

    def tally(self, source: str, host: str | None) -> Tally:
        key = (source, host)
        tally = self.current.get(key)
        if tally is None:
            tally = self.current[key] = Tally()
        return tally

    def rotate(self) -> dict[Key, Tally]:
        closed, self.current = self.current, {}
        return closed


def merge_tallies(into: dict[Key, Tally], more: Mapping[Key, Tally]) -> None:
    for key, tally in more.items():
        target = into.get(key)
        if target is None:
            target = into[key] = Tally()
        target.merge(tally)


@dataclass
class WindowStats:
    """One window's numbers for one host or the total: what rules judge and samples store.

    Latencies are in milliseconds, rates are fractions (0.01 = 1%), ``rps`` per second.
    A value is None when the window had nothing to compute it from.
    """

    host: str
    index: int
    start: float
    end: float
    requests: int = 0
    errors: int = 0
    client_errors: int = 0
    rps: float = 0.0
    error_rate: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    probes: int = 0
    probe_ok: int = 0
    uptime: float | None = None
    probe_failures: int | None = None
    source: str = ""
    unparsed: int = 0
    scrape_errors: int = 0
    verdict: str = "inconclusive"  # pass | warn | fail | inconclusive
    bad_rules: list[str] = field(default_factory=list)
    secondary: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return max(self.end - self.start, 1e-9)

    def value(self, metric: str) -> float | None:
        return getattr(self, metric)

    def sample_size(self, metric: str) -> int:
        """Requests for traffic metrics, probes for probe metrics (uptime, probe_failures)."""
        return self.probes if metric in ("uptime", "probe_failures") else self.requests

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> WindowStats:
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


def summarize_tally(
    tally: Tally | None, probes: Tally | None, host: str, index: int, start: float, end: float
) -> WindowStats:
    """The numbers of one scope from its traffic tally and its probe tally."""
    stats = WindowStats(host=host, index=index, start=start, end=end)
    if tally is not None:
        stats.requests = tally.requests
        stats.errors = tally.errors
        stats.client_errors = tally.client_errors
        stats.unparsed = tally.unparsed
        stats.scrape_errors = tally.scrape_errors
        if tally.requests and tally.status_known:
            stats.error_rate = tally.errors / tally.requests
        p50, p95, p99 = tally.digest.quantiles((0.5, 0.95, 0.99))
        stats.p50, stats.p95, stats.p99 = p50, p95, p99
    stats.rps = stats.requests / stats.seconds
    if probes is not None and probes.probes:
        stats.probes = probes.probes
        stats.probe_ok = probes.probe_ok
        stats.uptime = probes.probe_ok / probes.probes
        stats.probe_failures = probes.probe_failures
    return stats


def summarize(
    tallies: Mapping[Key, Tally],
    hosts: Iterable[str],
    traffic: str,
    index: int,
    start: float,
    end: float,
) -> list[WindowStats]:
    """Per-host stats (every known host, even silent ones) and the total, total last.

    ``traffic`` names the source whose requests count; the others are kept as
    ``secondary`` figures so that two sources never count the same request twice.
    """
    names = list(dict.fromkeys([*hosts, *(h for (_, h) in tallies if h is not None)]))
    out: list[WindowStats] = []
    merged: dict[str, Tally] = {}
    for source in SOURCES:
        for (src, _), tally in tallies.items():
            if src == source:
                merged.setdefault(source, Tally()).merge(tally)
    for name in names:
        stats = summarize_tally(
            tallies.get((traffic, name)), tallies.get(("probes", name)), name, index, start, end
        )
        stats.source = traffic
        stats.secondary = _secondary(tallies, name, traffic, stats.seconds)
        out.append(stats)
    total = summarize_tally(merged.get(traffic), merged.get("probes"), TOTAL, index, start, end)
    total.source = traffic
    total.secondary = _secondary(
        {(s, TOTAL): t for s, t in merged.items()}, TOTAL, traffic, total.seconds
    )
    out.append(total)
    return out


def _secondary(
    tallies: Mapping[Key, Tally], host: str, traffic: str, seconds: float
) -> dict[str, dict[str, Any]]:
    """The figures of the traffic sources that do not decide, for comparison only."""
    extra: dict[str, dict[str, Any]] = {}
    for source in ("haproxy", "access_log", "prometheus"):
        tally = tallies.get((source, host))
        if source == traffic or tally is None or not tally.requests:
            continue
        p95 = tally.digest.quantile(0.95)
        extra[source] = {
            "requests": tally.requests,
            "rps": round(tally.requests / seconds, 3),
            "error_rate": tally.errors / tally.requests if tally.status_known else None,
            "p95": None if p95 is None else round(p95, 3),
        }
    return extra
