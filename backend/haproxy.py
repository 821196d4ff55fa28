"""HAProxy's runtime API (the stats socket), shared by the engine (drain, ready, the
phase-1 check) and the monitor (per-server ``show stat`` as a traffic source).

Non-interactive mode: one command per connection, the answer read to EOF. HAProxy answers
nothing to a ``set server`` that worked and a sentence ("No such server.") to one that did
not, so every answer is checked rather than trusting that the connection worked.
"""

from __future__ import annotations

import asyncio


class RuntimeAPIError(Exception):
    """HAProxy did not answer, refused a command, or does not know a backend/server."""


def server_of(name: str, default_backend: str) -> tuple[str, str]:
    """(backend, server) of a host whose name in HAProxy is ``name``: ``"srv"`` lives in
    ``default_backend``, ``"backend/srv"`` names both."""
    if "/" in name:
        backend, server = name.split("/", 1)
        return backend, server
    return default_backend, name


def parse_show_stat(text: str) -> list[dict[str, str]]:
    """``show stat`` CSV as one dict per proxy/server row (keys from the ``# `` header)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise RuntimeAPIError(f"unexpected answer to show stat: {text[:200]!r}")
    header = lines[0][2:].split(",")
    return [dict(zip(header, line.split(","), strict=False)) for line in lines[1:]]


class HAProxyRuntime:
    """The runtime API at ``address``: a Unix socket path or ``host:port`` (TCP)."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self.address = address
        self.timeout = timeout

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.address.startswith("/"):
            return await asyncio.open_unix_connection(self.address)
        host, _, port = self.address.rpartition(":")
        return await asyncio.open_connection(host.strip("[]"), int(port))

    async def command(self, text: str) -> str:
        # a ';' or newline would let one value smuggle a second command in
        if "\n" in text or ";" in text:
            raise RuntimeAPIError(f"refused: a runtime API command with ';' or a newline: {text!r}")
        try:
            reader, writer = await asyncio.wait_for(self._open(), self.timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise RuntimeAPIError(
                f"HAProxy runtime API {self.address} unreachable: {type(exc).__name__}: {exc}"
            ) from None
        try:
            writer.write(text.encode() + b"\n")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise RuntimeAPIError(
                f"HAProxy runtime API {self.address}: no answer to {text!r}: {exc!r}"
            ) from None
        finally:
            writer.close()
        return data.decode(errors="replace")

    async def set_state(self, backend: str, server: str, state: str) -> str:
        """``set server B/S state drain|ready|maint``; the command sent, or RuntimeAPIError."""
        command = f"set server {backend}/{server} state {state}"
        answer = (await self.command(command)).strip()
        if answer:
            raise RuntimeAPIError(f"HAProxy refused {command!r}: {answer}")
        return command

    async def show_stat(self) -> list[dict[str, str]]:
        return parse_show_stat(await self.command("show stat"))

    async def server_row(self, backend: str, server: str) -> dict[str, str]:
        for row in await self.show_stat():
            if row.get("pxname") == backend and row.get("svname") == server:
                return row
        raise RuntimeAPIError(f"HAProxy has no server {backend}/{server} (show stat)")
