"""A kept-alive connection that the server closes just as the client reuses it (HAProxy's
``timeout http-keep-alive``, nginx's ``keepalive_timeout``) is no error of the release:
browsers send such a request again on a new connection. Q06 did not, so under load a
rollback's verification counted a few such races as 5xx and ended "partial". A server
that really drops requests is still counted."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import pytest

from backend.checks import run_validation
from tests.test_checks_support import make_config

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"


async def serve(reset: bool = False) -> tuple[asyncio.Server, int]:
    """Answers the first request of each connection and keeps it open; the second request
    on it is met with a close (FIN) or a reset (RST), like the race."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for n in range(2):
                await reader.readuntil(b"\r\n\r\n")
                if n == 1:
                    break
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        if reset:  # SO_LINGER 0: close() sends RST, the client's read fails with a reset
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def error_rate(tmp_path: Path, port: int) -> object:
    config = make_config(
        tmp_path,
        portal={"public_url": f"http://127.0.0.1:{port}"},
        hosts=[{"name": "web-1", "address": "127.0.0.1", "transport": "local"}],
        validation={"error_rate_samples": 10, "error_rate_concurrency": 1},
    )
    report = await run_validation(config, "post", only=["Q06"], hosts={}, store_report=False)
    return next(c for c in report.checks if c.id == "Q06")


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
async def test_a_reused_connection_closed_by_the_server_is_sent_again(
    tmp_path: Path, reset: bool
) -> None:
    server, port = await serve(reset)
    async with server:
        q06 = await error_rate(tmp_path, port)
    assert q06.status == "pass" and q06.value == 0, q06.message


async def test_a_server_that_drops_requests_still_fails(tmp_path: Path) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    async with server:
        q06 = await error_rate(tmp_path, server.sockets[0].getsockname()[1])
    assert q06.status == "fail" and q06.value == 100, q06.message
