"""A real web app on loopback that degrades on command, for the monitor's tests and bench.

It answers HTTP on 127.0.0.1 (stdlib ThreadingHTTPServer), writes a real access log in
nginx ``combined`` + ``$request_time`` format, and serves a real ``/metrics`` made by
prometheus_client (a status-labelled request counter and a latency histogram).
``degrade(latency=, errors=, health_down=)`` changes it while traffic flows; ``restart_metrics()``
starts the counters from zero again, as an app restart does. :class:`Traffic` drives real
requests at it with httpx. The tests at the end check the app itself.
"""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


class DegradingApp:
    def __init__(self, log_path: Path) -> None:
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.latency = 0.0  # seconds added to every page request
        self.error_ratio = 0.0  # fraction of page requests answered 500 (deterministic)
        self.health_down = False  # /health answers 503
        self.served = 0
        self._error_credit = 0.0
        self._lock = threading.Lock()
        self._log = self.log_path.open("a", buffering=1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.restart_metrics()

    # -- control ---------------------------------------------------------------------------

    def restart_metrics(self) -> None:
        """New counters from zero: what /metrics shows after the app restarts."""
        registry = CollectorRegistry()
        self.requests_total = Counter(
            "http_requests", "Requests by status", ["status"], registry=registry
        )
        self.duration = Histogram(
            "http_request_duration_seconds", "Request latency", buckets=BUCKETS, registry=registry
        )
        self.registry = registry

    def degrade(
        self,
        latency: float | None = None,
        errors: float | None = None,
        health_down: bool | None = None,
    ) -> None:
        if latency is not None:
            self.latency = latency
        if errors is not None:
            self.error_ratio = errors
        if health_down is not None:
            self.health_down = health_down

    def restore(self) -> None:
        self.degrade(latency=0.0, errors=0.0, health_down=False)

    # -- serving ---------------------------------------------------------------------------

    def _status(self) -> int:
        with self._lock:
            self._error_credit += self.error_ratio
            if self._error_credit >= 1.0 - 1e-9:
                self._error_credit -= 1.0
                return 500
        return 200

    def handle(self, path: str) -> tuple[int, bytes, str]:
        if path == "/metrics":
            return 200, generate_latest(self.registry), "text/plain; version=0.0.4"
        if path == "/health":
            return (
                (503, b"down\n", "text/plain") if self.health_down else (200, b"ok\n", "text/plain")
            )
        if self.latency:
            time.sleep(self.latency)
        return self._status(), b"<html>portal</html>\n", "text/html"

    def access_log(self, client: str, request: str, status: int, size: int, agent: str,
                   seconds: float) -> None:  # fmt: skip
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
        line = f'{client} - - [{stamp}] "{request}" {status} {size} "-" "{agent}" {seconds:.3f}\n'
        with self._lock:
            self._log.write(line)
            self.served += 1

    def start(self) -> DegradingApp:
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                started = time.perf_counter()
                status, body, ctype = app.handle(self.path)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                seconds = time.perf_counter() - started
                if self.path != "/metrics":
                    app.requests_total.labels(status=str(status)).inc()
                    app.duration.observe(seconds)
                app.access_log(
                    self.client_address[0], self.requestline, status, len(body),
                    self.headers.get("User-Agent", "-"), seconds,
                )  # fmt: skip

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._log.close()


class _QuietServer(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops SYNs when a dozen clients connect at once

    def handle_error(self, request: object, client_address: object) -> None:
        return None  # clients hang up when traffic stops; that is not a test failure


class Traffic:
    """Real requests at the app from ``concurrency`` httpx workers, until stopped."""

    def __init__(self, url: str, concurrency: int = 4, pause: float = 0.0) -> None:
        self.url = url
        self.concurrency = concurrency
        self.pause = pause
        self.sent = 0
        self.statuses: dict[int, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    async def _worker(self, n: int) -> None:
        assert self._client is not None
        while True:
            try:
                response = await self._client.get(f"{self.url}/page/{n}")
                self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
            except httpx.HTTPError:
                self.statuses[0] = self.statuses.get(0, 0) + 1
            self.sent += 1
            await asyncio.sleep(self.pause)

    async def start(self) -> Traffic:
        limits = httpx.Limits(max_connections=self.concurrency)
        self._client = httpx.AsyncClient(timeout=10, limits=limits)
        self._tasks = [asyncio.create_task(self._worker(n)) for n in range(self.concurrency)]
        return self

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()


# -- the app itself ----------------------------------------------------------------------------


async def test_app_logs_every_request_and_counts_it(tmp_path: Path) -> None:
    app = DegradingApp(tmp_path / "access.log").start()
    try:
        app.degrade(errors=0.5)
        async with httpx.AsyncClient() as client:
            statuses = [(await client.get(f"{app.url}/page")).status_code for _ in range(10)]
            metrics = (await client.get(f"{app.url}/metrics")).text
    finally:
        app.stop()
    assert statuses.count(500) == 5 and statuses.count(200) == 5
    lines = (tmp_path / "access.log").read_text().splitlines()
    assert len(lines) == 11
    assert '"GET /page HTTP/1.1" 500 ' in lines[0] or '"GET /page HTTP/1.1" 500 ' in lines[1]
    assert 'http_requests_total{status="500"} 5.0' in metrics
    assert "http_request_duration_seconds_bucket" in metrics


async def test_app_health_goes_down_and_latency_adds(tmp_path: Path) -> None:
    app = DegradingApp(tmp_path / "access.log").start()
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{app.url}/health")).status_code == 200
            app.degrade(health_down=True, latency=0.05)
            assert (await client.get(f"{app.url}/health")).status_code == 503
            await client.get(f"{app.url}/page")
    finally:
        app.stop()
    last = (tmp_path / "access.log").read_text().splitlines()[-1]
    assert float(last.rsplit(" ", 1)[1]) >= 0.05
