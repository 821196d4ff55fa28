"""A webhook receiver on loopback that records what it is sent.

For ``portal-ops demo`` (show the notifications a real run would send without Slack) and
for the tests, which need a real HTTP server that can also answer 429 or hang on cue.
Standard library only; runs in a thread so it serves while the caller's loop is busy.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    method: str = "POST"

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """A scripted answer: a status, headers, a body, or ``hang`` (never answer)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "ok"
    hang: bool = False


class WebhookSink:
    """``with WebhookSink() as sink:`` POST to ``sink.url``; read ``sink.received``."""

    def __init__(self, replies: list[Reply] | None = None, host: str = "127.0.0.1") -> None:
        self.replies = list(replies or [])
        self.received: list[Received] = []
        self._cond = threading.Condition()
        self._release = threading.Event()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with sink._cond:
                    sink.received.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.time(),
                            self.command,
                        )
                    )
                    reply = sink.replies.pop(0) if sink.replies else Reply()
                    sink._cond.notify_all()
                if reply.hang:
                    sink._release.wait(60)
                    self.close_connection = True
                    return
                data = reply.body.encode()
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_PUT = do_POST  # a Pushgateway push is a PUT

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://{host}:{self.port}/hook"
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="webhook-sink", daemon=True
        )

    def start(self) -> WebhookSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> WebhookSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until ``count`` requests arrived (or ``timeout``); returns what arrived."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)
