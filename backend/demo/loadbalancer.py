"""The demo sandbox's front: a small asyncio HTTP/1.1 reverse proxy with drain and enable.

It does what the deploy engine needs from a real load balancer and nothing more: round-robin
over enabled backends, ``POST /_lb/drain/{name}`` that answers only once the backend has no
request in flight, ``POST /_lb/enable/{name}``, and ``GET /_lb/status``. There are no silent
retries: an upstream that fails answers 502, so a deploy that drops requests shows it.
With ``--notify-log`` it is also the demo's notification sink (``POST /_lb/notify``): it
lives as long as the sandbox, so notifications of commands run after ``demo up`` land.

Run as its own process::

    python -m backend.demo.loadbalancer --port 8080 \\
        --backend host-1=http://127.0.0.1:8001 --backend host-2=http://127.0.0.1:8002
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
}
MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
DRAIN_TIMEOUT = 30.0


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    @property
    def keep_alive(self) -> bool:
        conn = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    head_length: int | None = None  # a HEAD answer's Content-Length (it has no body)

    @classmethod
    def json(cls, status: int, data: object, backend: str | None = None) -> Response:
        headers = [("Content-Type", "application/json")]
        if backend:
            headers.append(("X-Backend", backend))
        return cls(status, (json.dumps(data) + "\n").encode(), headers)


@dataclass
class Backend:
    """One upstream. ``state``: enabled, draining (no new requests) or drained."""

    name: str
    url: str
    state: str = "enabled"
    in_flight: int = 0
    served: int = 0  # requests routed to it
    errors: int = 0  # 5xx answers plus transport failures
    failures: int = 0  # transport failures only (answered 502 by us)
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "url": self.url,
            "state": self.state,
            "in_flight": self.in_flight,
            "served": self.served,
            "errors": self.errors,
            "failures": self.failures,
        }


class LoadBalancer:
    """Routing, the admin API and graceful shutdown; one instance per process."""

    def __init__(
        self,
        backends: list[tuple[str, str]],
        upstream_timeout: float = 30.0,
        notify_log: Path | None = None,
    ) -> None:
        self.notify_log = notify_log  # POST /_lb/notify appends here (the demo's sink)
        self.backends = {name: Backend(name, url.rstrip("/")) for name, url in backends}
        self.order = list(self.backends)
        self._next = 0
        self.requests = 0
        self.started = time.time()
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(upstream_timeout, connect=5.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=32),
            follow_redirects=False,
        )
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._active = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        self.closing = False

    # -- routing -----------------------------------------------------------------------------

    def pick(self) -> Backend | None:
        """Round-robin over enabled backends; synchronous, so counting cannot race a drain."""
        for _ in range(len(self.order)):
            backend = self.backends[self.order[self._next % len(self.order)]]
            self._next = (self._next + 1) % len(self.order)
            if backend.state == "enabled":
                return backend
        return None

    async def dispatch(self, req: Request, peer: str) -> Response:
        path = urlsplit(req.target).path
        if path == "/_lb" or path.startswith("/_lb/"):
            return await self.admin(req, path)
        if not req.target.startswith("/"):
            return Response.json(400, {"error": "only origin-form request targets are proxied"})
        backend = self.pick()
        if backend is None:
            return Response.json(503, {"error": "no backend is enabled"})
        return await self.proxy(req, backend, peer)

    async def proxy(self, req: Request, backend: Backend, peer: str) -> Response:
        backend.in_flight += 1
        backend.served += 1
        backend.idle.clear()
        try:
            headers = [(k, v) for k, v in req.headers if k.lower() not in HOP_BY_HOP]
            headers += [
                ("X-Forwarded-For", peer),
                ("X-Forwarded-Proto", "http"),
                ("X-Forwarded-Host", req.header("host") or ""),
            ]
            upstream = self.client.build_request(
                req.method, backend.url + req.target, headers=headers, content=req.body
            )
            resp = await self.client.send(upstream, stream=True)
            try:
                body = b"".join([chunk async for chunk in resp.aiter_raw()])
            finally:
                await resp.aclose()
        except httpx.HTTPError as exc:
            backend.errors += 1
            backend.failures += 1
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return Response.json(502, {"error": "upstream failed", "detail": detail}, backend.name)
        finally:
            backend.in_flight -= 1
            if backend.in_flight == 0:
                backend.idle.set()
        if resp.status_code >= 500:
            backend.errors += 1
        out = [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in HOP_BY_HOP]
        out.append(("X-Backend", backend.name))
        length = resp.headers.get("content-length")
        head_length = int(length) if req.method == "HEAD" and length and length.isdigit() else None
        return Response(resp.status_code, body, out, head_length)

    # -- admin API -----------------------------------------------------------------------------

    async def admin(self, req: Request, path: str) -> Response:
        parts = [p for p in path.split("/") if p][1:]  # after "_lb"
        if parts == ["status"] and req.method in ("GET", "HEAD"):
            return Response.json(200, self.status())
        if parts == ["notify"] and self.notify_log is not None:
            if req.method != "POST":
                return Response.json(405, {"error": "use POST /_lb/notify"})
            return Response.json(200, self.received(req))
        if len(parts) == 2 and parts[0] in ("drain", "enable"):
            if req.method != "POST":
                return Response.json(405, {"error": f"use POST /_lb/{parts[0]}/{{backend}}"})
            backend = self.backends.get(parts[1])
            if backend is None:
                return Response.json(
                    404, {"error": f"unknown backend {parts[1]!r}", "backends": self.order}
                )
            if parts[0] == "enable":
                return Response.json(200, self.enable(backend))
            query = parse_qs(urlsplit(req.target).query)
            try:
                timeout = float(query.get("timeout", [DRAIN_TIMEOUT])[0])
            except ValueError:
                return Response.json(400, {"error": "timeout must be a number of seconds"})
            status, data = await self.drain(backend, timeout)
            return Response.json(status, data)
        return Response.json(
            404,
            {
                "error": "unknown admin path",
                "paths": [
                    "GET /_lb/status",
                    "POST /_lb/drain/{backend}",
                    "POST /_lb/enable/{backend}",
                ],
            },
        )

    def received(self, req: Request) -> dict[str, object]:
        """A notification for the demo's sink: one JSON line (time, body) in the log."""
        assert self.notify_log is not None
        line = {"at": time.time(), "body": req.body.decode("utf-8", errors="replace")}
        with self.notify_log.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
        return {"received": True}

    def status(self) -> dict[str, object]:
        return {
            "backends": [self.backends[name].to_dict() for name in self.order],
            "requests": self.requests,
            "uptime_seconds": round(time.time() - self.started, 3),
        }

    async def drain(self, backend: Backend, timeout: float) -> tuple[int, dict[str, object]]:
        """No new requests from now on; answer once in-flight ones have finished."""
        started = time.monotonic()
        if backend.state == "enabled":
            backend.state = "draining"
        try:
            await asyncio.wait_for(backend.idle.wait(), timeout)
        except TimeoutError:
            log(f"drain {backend.name}: {backend.in_flight} still in flight after {timeout} s")
            return 504, {
                "backend": backend.name,
                "state": backend.state,
                "in_flight": backend.in_flight,
                "error": f"still {backend.in_flight} request(s) in flight after {timeout} s",
            }
        if backend.state == "draining":  # an enable meanwhile wins
            backend.state = "drained"
        seconds = time.monotonic() - started
        log(f"drain {backend.name}: {backend.state} in {seconds:.3f} s")
        return 200, {
            "backend": backend.name,
            "state": backend.state,
            "in_flight": backend.in_flight,
            "seconds": round(seconds, 3),
        }

    def enable(self, backend: Backend) -> dict[str, object]:
        backend.state = "enabled"
        log(f"enable {backend.name}")
        return {"backend": backend.name, "state": "enabled", "in_flight": backend.in_flight}

    # -- connections ---------------------------------------------------------------------------

    async def serve(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._connection, host, port, limit=MAX_HEAD)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if peername else "-"
        try:
            while not self.closing:
                try:
                    req = await read_request(reader)
                except BadRequest as exc:
                    writer.write(render(Response.json(exc.status, {"error": str(exc)}), False))
                    await writer.drain()
                    break
                if req is None:
                    break
                self._active += 1
                self._quiet.clear()
                try:
                    self.requests += 1
                    try:
                        resp = await self.dispatch(req, peer)
                    except Exception as exc:  # a bug here must not hang the client
                        log(f"error on {req.method} {req.target}: {type(exc).__name__}: {exc}")
                        resp = Response.json(500, {"error": f"load balancer error: {exc}"})
                    keep = req.keep_alive and not self.closing
                    writer.write(render(resp, keep, head=req.method == "HEAD"))
                    await writer.drain()
                finally:
                    self._active -= 1
                    if self._active == 0:
                        self._quiet.set()
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def close(self, grace: float = 10.0) -> None:
        """Stop listening, let requests in flight finish, then close idle connections."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._quiet.wait(), grace)
        for writer in list(self._writers):
            writer.close()
        await self.client.aclose()


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """One request, or None when the client closed an idle connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise BadRequest(400, "incomplete request head") from None
    except asyncio.LimitOverrunError:
        raise BadRequest(431, "request head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise BadRequest(400, f"bad request line {lines[0][:100]!r}") from None
    if not version.startswith("HTTP/1."):
        raise BadRequest(505, f"unsupported protocol {version[:20]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise BadRequest(400, f"bad header line {line[:100]!r}")
        headers.append((name.strip(), value.strip()))
    req = Request(method.upper(), target, version, headers, b"")
    if "chunked" in (req.header("transfer-encoding") or "").lower():
        req.body = await read_chunked(reader)
    elif req.header("content-length"):
        try:
            length = int(req.header("content-length") or "0")
        except ValueError:
            raise BadRequest(400, "bad Content-Length") from None
        if length < 0 or length > MAX_BODY:
            raise BadRequest(413, "request body too large")
        req.body = await reader.readexactly(length)
    return req


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise BadRequest(400, "bad chunk size") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)
        if len(body) > MAX_BODY:
            raise BadRequest(413, "request body too large")


def render(resp: Response, keep_alive: bool, head: bool = False) -> bytes:
    try:
        reason = HTTPStatus(resp.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {resp.status} {reason}"]
    lines += [f"{k}: {v}" for k, v in resp.headers]
    length = resp.head_length if head and resp.head_length is not None else len(resp.body)
    lines.append(f"Content-Length: {length}")
    lines.append("Connection: " + ("keep-alive" if keep_alive else "close"))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")
    return data if head else data + resp.body


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} lb: {message}", flush=True)


def parse_backend(text: str) -> tuple[str, str]:
    name, sep, url = text.partition("=")
    if not sep or not name or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected NAME=http://HOST:PORT, got {text!r}")
    return name, url


async def watch(path: Path, stop: asyncio.Event, also_stop: list[int] | None = None) -> None:
    """Exit when ``path`` disappears: a sandbox deleted without stopping leaves no orphan.
    ``also_stop``: pids of the sandbox's redis-server, which cannot watch for itself."""
    while path.exists():
        await asyncio.sleep(1.0)
    log(f"{path} was removed")
    for pid in also_stop or []:
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"redis-server" in title:  # still ours, not a reused pid
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
                log(f"stopped redis-server pid {pid}")
    stop.set()


async def run(args: argparse.Namespace) -> int:
    notify_log = Path(args.notify_log) if args.notify_log else None
    lb = LoadBalancer(args.backend, upstream_timeout=args.timeout, notify_log=notify_log)
    try:
        await lb.serve(args.host, args.port)
    except OSError as exc:
        print(
            f"loadbalancer: cannot listen on {args.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        await lb.client.aclose()
        return 1
    pidfile = Path(args.pidfile) if args.pidfile else None
    if pidfile:
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        pidfile.write_text(f"{os.getpid()}\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    names = ", ".join(f"{n}={u}" for n, u in args.backend)
    log(f"listening on http://{args.host}:{args.port} pid {os.getpid()}; backends {names}")
    watcher = (
        asyncio.create_task(watch(Path(args.watch), stop, args.also_stop)) if args.watch else None
    )
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    log("stopping: finishing requests in flight")
    await lb.close()
    if pidfile:
        with contextlib.suppress(OSError):
            if pidfile.read_text().strip() == str(os.getpid()):
                pidfile.unlink()
    log("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m backend.demo.loadbalancer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--backend",
        type=parse_backend,
        action="append",
        required=True,
        metavar="NAME=URL",
        help="an upstream; repeat for each",
    )
    p.add_argument("--pidfile", help="write the pid here (removed on exit)")
    p.add_argument("--watch", metavar="PATH", help="stop when PATH no longer exists")
    p.add_argument(
        "--also-stop",
        type=int,
        action="append",
        default=[],
        metavar="PID",
        help="with --watch: a redis-server to stop too when PATH is removed",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="upstream timeout in seconds")
    p.add_argument(
        "--notify-log",
        metavar="FILE",
        help="serve POST /_lb/notify, a webhook receiver appending each body to FILE",
    )
    args = p.parse_args(argv)
    names = [n for n, _ in args.backend]
    if len(set(names)) != len(names):
        p.error(f"backend names must be unique: {names}")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
