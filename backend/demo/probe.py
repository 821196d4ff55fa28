"""A steady load against the portal's front while it is deployed: proof of zero downtime.

The probe sends ``rate`` requests per second (at most ``concurrency`` at once) round-robin
over a few paths of one base URL and counts every answer. A request fails when it answers
anything but 2xx or does not answer at all; the first failures are kept with their time,
path, status or error and the backend that served them, so a failed switch can be traced to
its host. It never targets anything but the given URL and stops itself after
``max_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import httpx

MAX_FAILURES_KEPT = 20


@dataclass(frozen=True)
class ProbeFailure:
    time: float  # epoch seconds
    path: str
    status: int | None  # None: no HTTP answer (see error)
    error: str | None
    backend: str | None  # the X-Backend header, when the front answered

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class ProbeStats:
    sent: int = 0  # requests completed (answered or failed)
    failed: int = 0  # non-2xx or transport error
    by_status: dict[str, int] = field(default_factory=dict)  # "200", "502", "error"
    by_backend: dict[str, int] = field(default_factory=dict)  # from X-Backend
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    first_failures: list[ProbeFailure] = field(default_factory=list)
    seconds: float = 0.0  # how long the probe has run
    url: str = ""

    @property
    def ok(self) -> int:
        return self.sent - self.failed

    @property
    def latency_ms(self) -> dict[str, float]:
        return {"p50": self.p50_ms, "p95": self.p95_ms, "p99": self.p99_ms, "max": self.max_ms}

    def to_dict(self) -> dict[str, object]:
        return {
            "url": self.url,
            "sent": self.sent,
            "failed": self.failed,
            "ok": self.ok,
            "by_status": dict(self.by_status),
            "by_backend": dict(self.by_backend),
            "latency_ms": self.latency_ms,
            "first_failures": [f.to_dict() for f in self.first_failures],
            "seconds": round(self.seconds, 3),
        }


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class LoadProbe:
    """``await probe.start()``; ``probe.stats()`` while it runs; ``await probe.stop()``."""

    def __init__(
        self,
        url: str,
        rate: float = 25.0,
        concurrency: int = 4,
        paths: Sequence[str] = ("/", "/api/companies"),
        max_seconds: float = 600.0,
        timeout: float = 5.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"probe url must be http(s)://..., got {url!r}")
        if rate <= 0 or concurrency < 1 or max_seconds <= 0:
            raise ValueError("rate and max_seconds must be > 0 and concurrency >= 1")
        bad = [p for p in paths if not p.startswith("/") or p.startswith("//") or "://" in p]
        if not paths or bad:
            raise ValueError(f"paths must be absolute paths on {url} (like '/up'), got {bad}")
        self.url = url.rstrip("/")
        self.rate = rate
        self.concurrency = concurrency
        self.paths = tuple(paths)
        self.max_seconds = max_seconds
        self.timeout = timeout
        self._stats = ProbeStats(url=self.url)
        self._latencies: list[float] = []
        self._client: httpx.AsyncClient | None = None
        self._runner: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._started = 0.0
        self._stopped_at: float | None = None

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._runner.done()

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("probe already started")
        self._client = httpx.AsyncClient(
            base_url=self.url,
            timeout=self.timeout,
            limits=httpx.Limits(max_connections=self.concurrency),
            follow_redirects=False,
            headers={"User-Agent": "portal-ops-probe"},
        )
        self._started = time.monotonic()
        self._runner = asyncio.create_task(self._run(), name="load-probe")

    async def _run(self) -> None:
        assert self._client is not None
        gate = asyncio.Semaphore(self.concurrency)
        interval = 1.0 / self.rate
        deadline = self._started + self.max_seconds
        next_at = self._started
        n = 0
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            if next_at > now:
                await asyncio.sleep(next_at - now)
            await gate.acquire()
            path = self.paths[n % len(self.paths)]
            n += 1
            task = asyncio.create_task(self._one(path, gate))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            next_at = max(next_at + interval, time.monotonic() - interval)

    async def _one(self, path: str, gate: asyncio.Semaphore) -> None:
        assert self._client is not None
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        backend: str | None = None
        try:
            resp = await self._client.get(path)
            status = resp.status_code
            backend = resp.headers.get("x-backend")
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        finally:
            gate.release()
        self._record(path, started, status, error, backend)

    def _record(
        self, path: str, started: float, status: int | None, error: str | None, backend: str | None
    ) -> None:
        stats = self._stats
        stats.sent += 1
        key = str(status) if status is not None else "error"
        stats.by_status[key] = stats.by_status.get(key, 0) + 1
        if backend:
            stats.by_backend[backend] = stats.by_backend.get(backend, 0) + 1
        if status is not None:
            self._latencies.append((time.monotonic() - started) * 1000)
        if status is None or not 200 <= status < 300:
            stats.failed += 1
            if len(stats.first_failures) < MAX_FAILURES_KEPT:
                stats.first_failures.append(ProbeFailure(time.time(), path, status, error, backend))

    def stats(self) -> ProbeStats:
        """A snapshot (a copy: safe to keep while the probe goes on)."""
        ordered = sorted(self._latencies)
        end = self._stopped_at if self._stopped_at is not None else time.monotonic()
        s = self._stats
        return ProbeStats(
            sent=s.sent,
            failed=s.failed,
            by_status=dict(s.by_status),
            by_backend=dict(s.by_backend),
            p50_ms=round(percentile(ordered, 50), 2),
            p95_ms=round(percentile(ordered, 95), 2),
            p99_ms=round(percentile(ordered, 99), 2),
            max_ms=round(ordered[-1], 2) if ordered else 0.0,
            first_failures=list(s.first_failures),
            seconds=(end - self._started) if self._started else 0.0,
            url=self.url,
        )

    async def stop(self) -> ProbeStats:
        """Stop sending, wait for the requests in flight (each bounded by the timeout)."""
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._stopped_at is None and self._started:
            self._stopped_at = time.monotonic()
        return self.stats()

    async def __aenter__(self) -> LoadProbe:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
