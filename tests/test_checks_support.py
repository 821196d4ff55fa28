"""Shared pieces of the validation tests (no tests here): a small portal app on loopback
over HTTP or HTTPS whose behaviour each test sets (slow, failing, wrong version, missing
headers...), a config builder with local-transport hosts, and a real git repository.

Import the fixtures into a test module to use them:
``from tests.test_checks_support import git_repo, portal_app  # noqa: F401``.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from backend.config import Config, parse_config

SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


class PortalApp:
    """A threaded HTTP(S) server on 127.0.0.1 that behaves like the portal where the
    checks look; every attribute may be changed while it runs."""

    def __init__(self, cert: trustme.LeafCert | None = None) -> None:
        self.cert = cert
        self.delay = 0.0  # seconds added to every answer
        self.statuses: dict[str, int] = {}  # path -> forced status
        self.version: dict[str, Any] = {"revision": "a" * 40, "release": "20250801020000"}
        self.headers: dict[str, str] = dict(SECURITY_HEADERS)
        self.pages: dict[str, str] = {
            "/": "<h1>Business Portal</h1>",
            "/login": "<h1>Sign in</h1>",
        }
        self.assets: set[str] = set()  # paths served 200, e.g. "/build/app-1a2b.js"
        self.health: Any = "OK"  # str or a JSON-able body for /up
        self.pool: dict[str, Any] = {
            "listen queue": 0,
            "idle processes": 4,
            "active processes": 1,
            "total processes": 5,
            "max children reached": 0,
        }
        self.api_key = "good-key"
        self.requests = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.cert else "http"
        return f"{scheme}://127.0.0.1:{self.port}"  # the certificate names 127.0.0.1 too

    def start(self) -> PortalApp:
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                app.requests += 1
                if app.delay:
                    time.sleep(app.delay)
                status, body, ctype = app.route(self.path, dict(self.headers))
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for key, value in app.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if self.cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.cert.configure_cert(context)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def route(self, path: str, headers: dict[str, str]) -> tuple[int, str, str]:
        bare = path.split("?", 1)[0]
        if bare in self.statuses:
            return self.statuses[bare], "forced", "text/plain"
        if bare == "/up":
            if isinstance(self.health, str):
                return 200, self.health, "text/plain"
            return 200, json.dumps(self.health), "application/json"
        if bare == "/version":
            return 200, json.dumps(self.version), "application/json"
        if bare == "/fpm-status":
            return 200, json.dumps(self.pool), "application/json"
        if bare == "/api/me":
            auth = headers.get("Authorization", "")
            if auth == f"Bearer {self.api_key}":
                return 200, '{"ok": true}', "application/json"
            return 401, '{"error": "unauthenticated"}', "application/json"
        if bare in self.pages:
            return 200, self.pages[bare], "text/html"
        if bare in self.assets:
            return 200, "/* asset */", "text/plain"
        return 404, "not found", "text/plain"


@pytest.fixture
def portal_app() -> Iterator[PortalApp]:
    app = PortalApp().start()
    yield app
    app.stop()


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA()


def tls_app(ca: trustme.CA, days: float) -> PortalApp:
    """An HTTPS app whose certificate (for localhost and 127.0.0.1) expires in ``days``."""
    now = datetime.now(UTC)
    cert = ca.issue_cert(
        "localhost",
        "127.0.0.1",
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=days),
    )
    return PortalApp(cert).start()


@pytest.fixture(scope="session")
def git_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real git repository with one commit on ``main``: (path, commit hash)."""
    repo = tmp_path_factory.mktemp("repo")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(repo)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    (repo / "README").write_text("portal\n")
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    return repo, sha.stdout.strip()


def make_config(
    tmp_path: Path,
    *,
    validation: dict[str, Any] | None = None,
    portal: dict[str, Any] | None = None,
    hosts: list[dict[str, Any]] | None = None,
    **sections: Any,
) -> Config:
    """A config with local-transport hosts deploying under ``tmp_path/app``."""
    deploy = tmp_path / "app"
    deploy.mkdir(exist_ok=True)
    raw: dict[str, Any] = {
        "portal": {
            "repository": str(tmp_path / "no-repo"),
            "deploy_path": str(deploy),
            **(portal or {}),
        },
        "hosts": hosts or [{"name": "web-1", "address": "localhost", "transport": "local"}],
        "state": {"dir": str(tmp_path / "state")},
        "validation": {"timeout": 10, "http_timeout": 3, **(validation or {})},
        **sections,
    }
    return parse_config(raw, "test.toml")


def rows(report: Any, check_id: str) -> list[Any]:
    """The report's rows of one check."""
    return [r for r in report.checks if r.id == check_id]


def status(report: Any, check_id: str) -> str:
    """One check's status (the worst of its rows)."""
    from backend.checks.model import check_status

    return str(check_status(rows(report, check_id)))
