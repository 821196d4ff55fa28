"""The sample "Business Portal": a small threaded HTTP app the demo deploys.

Run from a release directory (``python app.py``); everything it needs comes from the
release's ``.env``. It behaves like the real portal where portal-ops looks: a health
endpoint, a version endpoint, a database-backed API, Prometheus metrics, nginx-style access
logs and Laravel-style error logs. SIGTERM finishes in-flight requests before exiting, so a
drained host restarts without dropping anything.

Version 2 evaluates a real feature flag, ``ui-improvements``, per company, with portal-ops'
``backend.flags.FlagClient`` (started once when ``REDIS_URL`` is set; it keeps the flags
current from Redis pub/sub and counts usage for ``portal-ops feature stats``): each row of
``/api/companies`` says whether that company gets it and why, and ``/?company=ID`` (or an
``X-Company`` header) shows the new UI to a company that has it. Without ``REDIS_URL`` the
portal evaluates no flags and says so on ``/``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import sys
import threading
import time
import traceback
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import settings as portal_settings
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

ERROR_RATE = 0.08  # the "errors" scenario: share of / and /api/* answered 500
ERROR_LATENCY = 0.25  # the "errors" scenario: added to every response, seconds
# The "errors" scenario is a leak that shows under real traffic once the release is live,
# after the post-deployment checks passed, so it is the monitor's rules (phase 9) that
# must catch it. The demo's own runs (headless and in the control room) say when: they
# write storage/break-driven when they start and storage/break-now once phase 7 passed,
# so a slow machine cannot make the leak start before the checks. Without them (a
# sandbox left up, deployed with the CLI) it starts this long after the process does.
ERROR_DELAY = 10.0
DRIVEN, NOW = "break-driven", "break-now"
ROUTES = ("/", "/up", "/version", "/login", "/api/companies", "/api/flags", "/metrics")
FLAG = "ui-improvements"  # the flag version 2 introduces
FLAG_START_WAIT = 1.0  # seconds the start waits for the first flag load from Redis
FLAG_FLUSH_INTERVAL = 1.0  # usage counts reach Redis this often (`feature stats`)
SECURITY_HEADERS = {  # what the real portal's middleware sends; checked after a deploy
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Content-Security-Policy": "default-src 'self'",
    "Referrer-Policy": "same-origin",
}
CONTENT_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


class Response:
    """What a route answers; the handler adds the common headers and writes it."""

    def __init__(
        self,
        status: int,
        body: bytes | str,
        content_type: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
        error: str | None = None,
    ) -> None:
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.content_type = content_type
        self.headers = headers or {}
        self.error = error  # what the error log says for a 5xx


class InjectedFailure(RuntimeError):
    """A failure the "errors" break scenario causes on purpose (no traceback logged)."""


def json_response(data: object, status: int = 200) -> Response:
    return Response(status, json.dumps(data, indent=None), "application/json")


class Flags:
    """The portal's feature flags: one portal-ops ``FlagClient`` for the process, or none
    (then ``note`` says why and nothing is evaluated)."""

    def __init__(self, client: Any = None, context: Any = None, note: str = "") -> None:
        self.client = client
        self.context = context  # backend.flags.Context
        self.note = note

    @classmethod
    def start(cls, cfg: portal_settings.Settings) -> Flags:
        """Never raises: a portal without its flags still serves (they are all off)."""
        if cfg.version == "1":
            return cls(note="")  # version 1 has no feature flags
        if not cfg.redis_url:
            return cls(
                note="Feature flags: not evaluated (no REDIS_URL in .env: no Redis here),"
                f" so {FLAG} is off for every company."
            )
        if cfg.python_path and cfg.python_path not in sys.path:
            sys.path.insert(1, cfg.python_path)  # after the release dir: settings.py wins
        try:
            from backend.flags import Context, FlagClient
        except ImportError as exc:
            return cls(
                note=f"Feature flags: not evaluated (portal-ops' FlagClient cannot be imported:"
                f" {exc}; set PORTAL_OPS_PYTHONPATH in .env), so {FLAG} is off for every company."
            )
        client = FlagClient(
            cfg.redis_url, prefix=cfg.redis_prefix, flush_interval=FLAG_FLUSH_INTERVAL
        )
        ready = client.start(wait=FLAG_START_WAIT)
        state = client.status()
        note = f"Feature flags: FlagClient on {state['redis']}, " + (
            f"ready ({state['flags']} flag(s), version {state['version']})"
            if ready
            else f"not loaded yet ({state['last_error'] or 'no answer'}); retrying"
        )
        return cls(client, Context, note)

    def resolve(self, company: str) -> Any:
        """The Resolution of ``FLAG`` for ``company`` (usage counted); None without a client."""
        if self.client is None:
            return None
        return self.client.resolve(FLAG, self.context(company=company))

    def status(self) -> dict[str, Any]:
        return {
            "flag": FLAG,
            "evaluated": self.client is not None,
            "note": self.note,
            "client": self.client.status() if self.client is not None else None,
        }

    def close(self) -> None:
        """Stop the client; its last usage counts are flushed to Redis."""
        if self.client is not None:
            self.client.close()


class Portal:
    """The application: routes, logs and metrics for one running release."""

    def __init__(self, cfg: portal_settings.Settings, flags: Flags | None = None) -> None:
        self.cfg = cfg
        self.flags = flags or Flags()
        self.version = cfg.version
        self.revision = cfg.revision
        self.scenario = cfg.break_scenario
        self.started = time.monotonic()
        self.build_dir = cfg.release_dir / "public" / "build"
        self.manifest = self._manifest()
        self._log_lock = threading.Lock()
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by method, route and status.",
            ["method", "path", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route.",
            ["method", "path"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight",
            "Requests being answered right now (a drained host goes to 0).",
            registry=self.registry,
        )
        info = Gauge(
            "portal_app_info",
            "The running release (always 1).",
            ["version", "release", "host"],
            registry=self.registry,
        )
        info.labels(self.version, cfg.release, cfg.host_name).set(1)

    def _manifest(self) -> dict[str, str]:
        try:
            data = json.loads((self.build_dir / "manifest.json").read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    # -- routing ---------------------------------------------------------------------------

    @property
    def degrading(self) -> bool:
        if self.scenario != "errors":
            return False
        storage = self.cfg.storage
        if (storage / NOW).exists():
            return True
        return not (storage / DRIVEN).exists() and time.monotonic() - self.started >= ERROR_DELAY

    def handle(self, method: str, path: str, body: bytes, company: str | None = None) -> Response:
        try:
            return self.route(method, path, body, company)
        finally:
            if self.degrading:  # slow answers, after the work is done
                time.sleep(ERROR_LATENCY)

    def route(self, method: str, path: str, body: bytes, company: str | None = None) -> Response:
        if path not in ("/up", "/metrics") and self.cfg.maintenance_file.exists():
            return Response(
                503,
                "<h1>Business Portal</h1><p>Down for maintenance, back in a moment.</p>",
                headers={"Retry-After": "15"},
                error="maintenance mode is on",
            )
        if (
            self.degrading
            and (path == "/" or path.startswith("/api/"))
            and random.random() < ERROR_RATE
        ):
            raise InjectedFailure(f"injected failure (break scenario 'errors') on {path}")
        if method not in ("GET", "HEAD") and path != "/login":
            return Response(405, "method not allowed\n", "text/plain", {"Allow": "GET, HEAD"})
        if path == "/up":
            if self.scenario == "health":
                return Response(
                    500,
                    "FAIL\n",
                    "text/plain",
                    error="health check failed (break scenario 'health')",
                )
            return Response(200, "OK", "text/plain")
        if path == "/version":
            return json_response(
                {
                    "version": self.version,
                    "revision": self.revision,
                    "release": self.cfg.release,
                    "host": self.cfg.host_name,
                }
            )
        if path == "/":
            return Response(200, self.home(company))
        if path == "/login":
            if method == "POST":
                return Response(303, "", headers={"Location": "/"})
            return Response(200, self.login())
        if path == "/api/companies":
            return json_response(self.companies())
        if path == "/api/flags":
            data = self.flags.status()
            if company:
                res = self.flags.resolve(company)
                data["company"] = company
                data["resolution"] = res.to_json() if res is not None else None
            return json_response(data)
        if path == "/metrics":
            return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        if path.startswith("/build/"):
            return self.asset(path[len("/build/") :])
        return Response(404, "<h1>404 Not Found</h1>")

    def route_label(self, path: str) -> str:
        """A bounded label for metrics: known routes, ``/build`` or ``other``."""
        if path in ROUTES:
            return path
        return "/build" if path.startswith("/build/") else "other"

    # -- pages -------------------------------------------------------------------------------

    def _page(self, title: str, content: str) -> str:
        css = self.manifest.get("app.css", "")
        js = self.manifest.get("app.js", "")
        links = f'<link rel="stylesheet" href="/build/{escape(css)}">' if css else ""
        script = f'<script src="/build/{escape(js)}" defer></script>' if js else ""
        return (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)} - Business Portal</title>{links}{script}</head>"
            f"<body><header><strong>Business Portal</strong>"
            f'<span class="version">v{escape(self.version)}</span>'
            f'<span class="version">{escape(self.cfg.host_name)} / {escape(self.cfg.release)}</span>'
            f"</header><main>{content}</main></body></html>\n"
        )

    def home(self, company: str | None = None) -> str:
        extra = (
            "<p>New in version 2: per-company features and mobile navigation.</p>"
            + self.flag_line(company)
            if self.version != "1"
            else ""
        )
        return self._page(
            "Dashboard",
            "<h1>Companies</h1>" + extra + '<table id="companies"><thead><tr><th>Name</th>'
            "<th>City</th><th>Employees</th></tr></thead><tbody></tbody></table>"
            '<p><a href="/login">Sign in</a></p>',
        )

    def flag_line(self, company: str | None) -> str:
        """One line on / about the ``ui-improvements`` flag: the new UI for a company that
        has it, why not otherwise, or why flags are not evaluated at all."""
        if self.flags.client is None:
            return f'<p class="flags">{escape(self.flags.note)}</p>'
        if not company:
            return (
                f'<p class="flags">Feature flag {FLAG} is evaluated per company: add'
                " ?company=ID (or an X-Company header).</p>"
            )
        res = self.flags.resolve(company)
        why = f"{FLAG}: {res.reason}, rule {res.rule}" + (
            f", bucket {res.bucket}" if res.bucket is not None else ""
        )
        if res.value:
            return (
                f'<p class="new-ui" id="new-ui"><strong>New UI</strong> for company'
                f" {escape(company)} ({escape(why)})</p>"
            )
        return f'<p class="flags">Classic UI for company {escape(company)} ({escape(why)})</p>'

    def login(self) -> str:
        return self._page(
            "Sign in",
            '<h1>Sign in</h1><form class="login" method="post" action="/login">'
            '<label>Email <input type="email" name="email" autocomplete="username"></label>'
            '<label>Password <input type="password" name="password"'
            ' autocomplete="current-password"></label>'
            '<button type="submit">Sign in</button></form>',
        )

    def companies(self) -> list[dict[str, object]]:
        """One connection per request: a restore or migration never meets a stale handle."""
        conn = sqlite3.connect(self.cfg.database, timeout=10)
        try:
            conn.row_factory = sqlite3.Row
            rows = [dict(r) for r in conn.execute("SELECT * FROM companies ORDER BY id")]
            if self.version != "1":  # version 2 reads the table its migration 002 added
                features: dict[int, list[str]] = {}
                for company_id, feature in conn.execute(
                    "SELECT company_id, feature FROM company_features WHERE enabled = 1"
                    " ORDER BY company_id, feature"
                ):
                    features.setdefault(company_id, []).append(feature)
                for row in rows:
                    row["features"] = features.get(int(row["id"]), [])
                    res = self.flags.resolve(str(row["id"]))
                    if res is not None:  # evaluated in-process: no network call per row
                        row["ui_improvements"] = res.value
                        row["ui_improvements_reason"] = res.reason
                        row["ui_improvements_rule"] = res.rule
            return rows
        finally:
            conn.close()

    def asset(self, name: str) -> Response:
        target = (self.build_dir / unquote(name)).resolve()
        if not target.is_relative_to(self.build_dir.resolve()) or not target.is_file():
            return Response(404, "<h1>404 Not Found</h1>")
        return Response(
            200,
            target.read_bytes(),
            CONTENT_TYPES.get(target.suffix, "application/octet-stream"),
            {"Cache-Control": "public, max-age=31536000, immutable"},
        )

    # -- logs --------------------------------------------------------------------------------

    def access(self, line: str) -> None:
        self._append(self.cfg.access_log, line)

    def error(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        context = json.dumps({"host": self.cfg.host_name, "release": self.cfg.release})
        self._append(self.cfg.app_log, f"[{stamp}] production.ERROR: {message} {context}")

    def _append(self, path: Path, line: str) -> None:
        with self._log_lock:
            try:
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(line.replace("\n", " ") + "\n")
            except OSError as exc:
                print(f"cannot write {path}: {exc}", file=sys.stderr, flush=True)


class Handler(BaseHTTPRequestHandler):
    """One connection, one request (``Connection: close``): a restart never races a reused
    keep-alive connection."""

    protocol_version = "HTTP/1.1"
    server_version = "BusinessPortal"
    timeout = 10  # an idle client cannot hold a shutdown open
    server: PortalServer

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        app = self.server.app
        started = time.monotonic()
        url = urlsplit(self.path)
        path = url.path or "/"
        company = (parse_qs(url.query).get("company") or [""])[0].strip() or (
            self.headers.get("X-Company") or ""
        ).strip()
        with app.in_flight.track_inprogress():
            self._answer(app, started, path, company or None)

    def _answer(self, app: Portal, started: float, path: str, company: str | None) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            response = app.handle(self.command, path, body, company)
        except Exception as exc:
            if not isinstance(exc, InjectedFailure):
                traceback.print_exc(file=sys.stderr)
            response = Response(
                500, "<h1>500 Server Error</h1>", error=f"{type(exc).__name__}: {exc}"
            )
        payload = b"" if self.command == "HEAD" else response.body
        self.close_connection = True
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("X-Portal-Host", app.cfg.host_name)
            self.send_header("X-Portal-Version", app.version)
            for key, value in SECURITY_HEADERS.items():
                self.send_header(key, value)
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            pass  # the client went away; the request still counts and is logged
        elapsed = time.monotonic() - started
        label = app.route_label(path)
        app.requests.labels(self.command, label, str(response.status)).inc()
        app.duration.labels(self.command, label).observe(elapsed)
        if response.status >= 500:
            app.error(
                f"{self.command} {path} answered {response.status}: {response.error or 'error'}"
            )
        app.access(
            f"{self.client_address[0]} - - [{time.strftime('%d/%b/%Y:%H:%M:%S %z')}] "
            f'"{_clean(self.requestline)}" {response.status} {len(payload)} '
            f'"{_clean(self.headers.get("Referer", "-"))}" '
            f'"{_clean(self.headers.get("User-Agent", "-"))}" {elapsed:.3f}'
        )

    def send_response(self, code: int, message: str | None = None) -> None:
        # BaseHTTPRequestHandler logs every response to stderr; the access log does that.
        self.send_response_only(code, message or HTTPStatus(code).phrase)
        self.send_header("Server", self.version_string())
        self.send_header("Date", self.date_time_string())

    def log_message(self, format: str, *args: object) -> None:
        """Protocol errors only (bad request lines); requests go to the access log."""
        print(f"{self.address_string()} {format % args}", file=sys.stderr, flush=True)


def _clean(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


class PortalServer(ThreadingHTTPServer):
    """Non-daemon handler threads, joined on close: shutdown waits for in-flight requests."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: Portal) -> None:
        self.app = app
        super().__init__(address, Handler)


def deploy_path(release: Path) -> Path:
    """``{deploy_path}`` for a release at ``{deploy_path}/releases/<id>``, else the release."""
    return release.parent.parent if release.parent.name == "releases" else release


def main() -> int:
    try:
        cfg = portal_settings.load()
    except (portal_settings.SettingsError, OSError) as exc:
        print(f"app.py: {exc}", file=sys.stderr)
        return 2
    cfg.ensure_dirs()
    flags = Flags.start(cfg)
    app = Portal(cfg, flags)
    try:
        server = PortalServer(("127.0.0.1", cfg.port), app)
    except OSError as exc:
        print(f"app.py: cannot listen on 127.0.0.1:{cfg.port}: {exc.strerror}", file=sys.stderr)
        flags.close()
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    cfg.pidfile.write_text(f"{os.getpid()}\n")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    print(
        f"Business Portal v{app.version} ({cfg.release}, {cfg.host_name}) listening on"
        f" http://127.0.0.1:{cfg.port} pid {os.getpid()}"
        + (f" [break scenario: {app.scenario}]" if app.scenario else ""),
        flush=True,
    )
    if flags.note:
        print(flags.note, flush=True)
    home = deploy_path(cfg.release_dir)
    while not stop.wait(0.5):
        if not thread.is_alive():
            break
        if not home.exists():  # the host was torn down under us: nothing left to serve
            print(f"{home} was removed: stopping", flush=True)
            break
    server.shutdown()  # stop accepting
    server.server_close()  # join the handler threads: in-flight requests finish
    thread.join()
    flags.close()  # the last usage counts go to Redis
    try:
        if cfg.pidfile.read_text().strip() == str(os.getpid()):
            cfg.pidfile.unlink()
    except OSError:
        pass
    print(f"pid {os.getpid()} stopped gracefully", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
