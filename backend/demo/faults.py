"""Fault injection for ``portal-ops demo --break=host``.

The demo's hosts are folders on this machine reached through the local transport, so
there is no SSH link to cut. :class:`DroppingHost` plays the part: the first time a chosen
step runs on the chosen host, it kills the command's process group mid-run and raises
:class:`ConnectionLost`, exactly what :class:`~backend.transport.ssh.SSHHost` raises when
sshd's session dies (that real case is tested against a real sshd in tests/engine).
Later commands go through, as after a reconnect.
"""

from __future__ import annotations

import asyncio

from ..transport import CommandResult, ConnectionLost, Host, LineCallback


class DroppingHost(Host):
    def __init__(self, inner: Host, marker: str, after: float = 0.3) -> None:
        self.inner = inner
        self.name = inner.name
        self.address = inner.address
        self.marker = marker  # a fragment of the command during which the link drops
        self.after = after
        self.dropped = False

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()

    async def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
        input: str | None = None,
        retry_safe: bool = False,
    ) -> CommandResult:
        if self.dropped or self.marker not in command:
            return await self.inner.run(
                command, timeout=timeout, on_line=on_line, input=input, retry_safe=retry_safe
            )
        self.dropped = True
        task = asyncio.ensure_future(
            self.inner.run(command, timeout=timeout, on_line=on_line, input=input)
        )
        await asyncio.sleep(self.after)
        task.cancel()  # the local transport kills the command's process group
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
        raise ConnectionLost(
            self.name, "connection lost: the SSH session died mid-command (demo --break=host)"
        )
