"""HAProxy's per-server stats (``show stat`` on the runtime API): real user traffic per
host, with no change to the app.

Each read is compared with the previous one: the ``hrsp_*`` counters give requests, 5xx
and 4xx per server; a counter that went down means HAProxy reloaded, and its new value
is the delta. HAProxy keeps no latency histogram per server, only ``rtime``, the mean
response time of its last 1024 answers: each new answer is counted with that mean, so
a window's p95 from this source is the server's recent mean response time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ...haproxy import HAProxyRuntime, RuntimeAPIError
from ..window import Windows
from . import Recover, Warn, run_every

SOURCE = "haproxy"
STATUS_COLUMNS = ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other")
LATENCY_COPIES = 2000  # at most this many copies of rtime per read (bounded memory)


def _int(row: Mapping[str, str], key: str) -> int:
    value = row.get(key) or "0"
    return int(value) if value.isdigit() else 0


@dataclass
class ServerDelta:
    requests: int = 0
    errors: int = 0
    client_errors: int = 0
    rtime_ms: float | None = None
    sessions: int = 0


class StatCounters:
    """The previous read of each server, for deltas and reload detection."""

    def __init__(self) -> None:
        self.previous: dict[tuple[str, str], dict[str, int]] | None = None

    def update(
        self, rows: list[dict[str, str]], servers: Mapping[tuple[str, str], str]
    ) -> dict[str, ServerDelta]:
        """Deltas per host name since the previous read (empty on the first read)."""
        current: dict[tuple[str, str], dict[str, int]] = {}
        out: dict[str, ServerDelta] = {}
        for row in rows:
            key = (row.get("pxname", ""), row.get("svname", ""))
            host = servers.get(key)
            if host is None:
                continue
            counts = {c: _int(row, c) for c in STATUS_COLUMNS}
            current[key] = counts
            if self.previous is None:
                continue
            before = self.previous.get(key, {})

            def delta(column: str, counts: dict[str, int] = counts, before=before) -> int:
                now, then = counts[column], before.get(column, 0)
                return now if now < then else now - then

            d = ServerDelta(sessions=_int(row, "scur"))
            d.requests = sum(delta(c) for c in STATUS_COLUMNS)
            d.errors = delta("hrsp_5xx")
            d.client_errors = delta("hrsp_4xx")
            if row.get("rtime", "").isdigit():
                d.rtime_ms = float(row["rtime"])
            out[host] = d
        self.previous = current
        return out


def apply(windows: Windows, deltas: Mapping[str, ServerDelta]) -> None:
    for host, d in deltas.items():
        tally = windows.tally(SOURCE, host)
        tally.requests += d.requests
        tally.errors += d.errors
        tally.client_errors += d.client_errors
        if d.rtime_ms is not None and d.requests:
            tally.digest.values.extend([d.rtime_ms] * min(d.requests, LATENCY_COPIES))


class HAProxyStats:
    """Reads ``show stat`` at an interval until cancelled; ``servers`` maps
    (backend, server) to the host name each row is counted for."""

    def __init__(
        self,
        api: HAProxyRuntime,
        servers: Mapping[tuple[str, str], str],
        interval: float,
        windows: Windows,
        warn: Warn,
        recover: Recover,
    ) -> None:
        self.api = api
        self.servers = dict(servers)
        self.interval = interval
        self.windows = windows
        self.warn = warn
        self.recover = recover
        self.counters = StatCounters()
        self.reads = 0
        self._problem = f"haproxy:{api.address}"

    async def read_once(self) -> None:
        try:
            rows = await self.api.show_stat()
        except RuntimeAPIError as exc:
            for host in self.servers.values():
                self.windows.tally(SOURCE, host).scrape_errors += 1
            self.warn(self._problem, None, f"HAProxy stats: {exc}")
            return
        missing = sorted(
            f"{b}/{s}" for (b, s) in self.servers if not any(
                r.get("pxname") == b and r.get("svname") == s for r in rows
            )
        )  # fmt: skip
        if missing:
            self.warn(
                self._problem + ":missing", None, f"HAProxy has no server {', '.join(missing)}"
            )
        self.reads += 1
        self.recover(self._problem)
        apply(self.windows, self.counters.update(rows, self.servers))

    async def run(self) -> None:
        await run_every(self.interval, self.read_once)

    def __repr__(self) -> str:
        return f"HAProxyStats({self.api.address})"
