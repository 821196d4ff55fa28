"""Usage statistics: counted in-process by the app, flushed in batches, read back by `stats`.

The app side never talks to Redis per evaluation: :class:`UsageCounter` keeps cumulative
counts in a dict (one increment per evaluation) and a flush sends only what grew since
the last successful flush, in one MULTI/EXEC, so a failed flush is simply retried later
and nothing is counted twice. Counters are cumulative rather than swapped out so that a
flush in the client's thread never races an increment in a request thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from .layout import HOUR_TTL, MINUTE_TTL, Keys

CountKey = tuple[str, str | None, bool]  # flag, company (or None), value served


class UsageCounter:
    def __init__(self, keys: Keys, max_keys: int = 200_000) -> None:
        self.keys = keys
        self.max_keys = max_keys  # distinct (flag, company, value) kept with the company id
        self.counts: dict[CountKey, int] = {}
        self._flushed: dict[CountKey, int] = {}

    def pending(self) -> dict[CountKey, int]:
        """Counts not yet flushed. ``dict(...)`` copies atomically under the GIL."""
        snap = dict(self.counts)
        flushed = self._flushed
        return {k: n - flushed.get(k, 0) for k, n in snap.items() if n > flushed.get(k, 0)}

    def flush(self, client: redis.Redis, now: float | None = None) -> int:
        """Send the increments since the last flush; returns how many evaluations went out.

        Raises ``redis.RedisError`` when Redis is unreachable; the counts stay pending.
        """
        snap = dict(self.counts)
        flushed = self._flushed
        delta = {k: n - flushed.get(k, 0) for k, n in snap.items() if n > flushed.get(k, 0)}
        if not delta:
            return 0
        now = time.time() if now is None else now
        minute, hour = int(now // 60), int(now // 3600)
        per_flag: dict[str, list[int]] = {}
        pipe = client.pipeline(transaction=True)
        for (name, company, value), n in delta.items():
            totals = per_flag.setdefault(name, [0, 0])
            totals[0 if value else 1] += n
            if company is not None:
                pipe.hincrby(
                    self.keys.usage_hour(name, hour), f"{'yes' if value else 'no'}:{company}", n
                )
        for name, (yes, no) in per_flag.items():
            mkey = self.keys.usage_minute(name, minute)
            if yes:
                pipe.hincrby(mkey, "yes", yes)
            if no:
                pipe.hincrby(mkey, "no", no)
            pipe.expire(mkey, MINUTE_TTL)
            pipe.expire(self.keys.usage_hour(name, hour), HOUR_TTL)
            pipe.set(self.keys.usage_last(name), f"{now:.3f}", ex=HOUR_TTL)
        pipe.execute()
        self._flushed = snap
        return sum(delta.values())


@dataclass
class FlagStats:
    """What `feature stats` shows: totals, a per-minute series, the top companies."""

    name: str
    since: float  # unix time the window starts
    until: float
    yes: int = 0
    no: int = 0
    series: list[tuple[int, int, int]] = field(default_factory=list)  # (minute start, yes, no)
    companies: list[tuple[str, int, int]] = field(default_factory=list)  # (company, yes, no)
    last_evaluated: float | None = None

    @property
    def total(self) -> int:
        return self.yes + self.no

    def to_json(self) -> dict[str, Any]:
        return {
            "flag": self.name,
            "since": self.since,
            "until": self.until,
            "evaluations": self.total,
            "true": self.yes,
            "false": self.no,
            "last_evaluated": self.last_evaluated,
            "series": [{"minute": m, "true": y, "false": n} for m, y, n in self.series],
            "top_companies": [
                {"company": c, "evaluations": y + n, "true": y, "false": n}
                for c, y, n in self.companies
            ],
        }


class UsageReader:
    """The bastion side: sums the buckets the apps wrote."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    def evaluations(
        self, names: Iterable[str], seconds: float = 3600, now: float | None = None
    ) -> dict[str, int]:
        """Evaluations of each flag in the last ``seconds`` (minute granularity)."""
        names = list(names)
        now = time.time() if now is None else now
        minutes = _minutes(now, seconds)
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            for minute in minutes:
                pipe.hmget(self.keys.usage_minute(name, minute), ["yes", "no"])
        replies = pipe.execute() if names else []
        out: dict[str, int] = {}
        for i, name in enumerate(names):
            chunk = replies[i * len(minutes) : (i + 1) * len(minutes)]
            out[name] = sum(int(y or 0) + int(n or 0) for y, n in chunk)
        return out

    def stats(
        self, name: str, seconds: float = 3600, top: int = 10, now: float | None = None
    ) -> FlagStats:
        now = time.time() if now is None else now
        minutes = _minutes(now, seconds)
        hours = sorted({m // 60 for m in minutes})
        pipe = self.redis.pipeline(transaction=False)
        for minute in minutes:
            pipe.hmget(self.keys.usage_minute(name, minute), ["yes", "no"])
        for hour in hours:
            pipe.hgetall(self.keys.usage_hour(name, hour))
        pipe.get(self.keys.usage_last(name))
        replies = pipe.execute()
        stats = FlagStats(name=name, since=minutes[0] * 60, until=now)
        for minute, (y, n) in zip(minutes, replies[: len(minutes)], strict=True):
            y, n = int(y or 0), int(n or 0)
            stats.yes += y
            stats.no += n
            stats.series.append((minute * 60, y, n))
        per_company: dict[str, list[int]] = {}
        for fields in replies[len(minutes) : len(minutes) + len(hours)]:
            for key, count in (fields or {}).items():
                which, _, company = key.partition(":")
                slot = per_company.setdefault(company, [0, 0])
                slot[0 if which == "yes" else 1] += int(count)
        ranked = sorted(per_company.items(), key=lambda kv: (-(kv[1][0] + kv[1][1]), kv[0]))
        stats.companies = [(c, y, n) for c, (y, n) in ranked[:top]]
        last = replies[-1]
        stats.last_evaluated = float(last) if last else None
        return stats


def _minutes(now: float, seconds: float) -> list[int]:
    end = int(now // 60)
    count = max(1, int(seconds // 60))
    return list(range(end - count + 1, end + 1))
