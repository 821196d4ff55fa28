"""The one interface every transport offers the engine, the checks and the monitor."""

from __future__ import annotations

import abc
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

LineCallback = Callable[[str, str], None]  # (stream: "stdout" | "stderr", line)

# which run a remote command belongs to ("<deployment id>.deploy"): its pid file carries it,
# so a rollback or a resume can find and stop what an interrupted run left on a host
command_tag: ContextVar[str | None] = ContextVar("command_tag", default=None)


class TransportError(Exception):
    """A command could not be run to completion on a host (not a non-zero exit status)."""

    def __init__(self, host: str, message: str) -> None:
        self.host = host
        super().__init__(f"{host}: {message}")


class HostUnreachable(TransportError):
    pass


class HostKeyMismatch(HostUnreachable):
    pass


class ConnectionLost(TransportError):
    pass


class CommandNotSent(ConnectionLost):
    """The link was found lost before the command reached the host (no channel opened):
    running it after a reconnect runs it once, whatever the command."""


class CommandTimeout(TransportError):
    pass


@dataclass(frozen=True)
class CommandResult:
    host: str
    command: str
    exit_status: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def tail(self, lines: int = 5) -> str:
        """The last lines of output, for error messages that say why."""
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return "\n".join(text[-lines:])


class Host(abc.ABC):
    """A machine commands run on. ``run`` never raises for a non-zero exit status; it raises
    :class:`TransportError` only when the command could not be run or finished."""

    name: str
    address: str

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
        input: str | None = None,
        retry_safe: bool = False,
    ) -> CommandResult:
        """Run ``command`` through ``/bin/sh -c`` on the host.

        ``retry_safe`` marks commands that may be run again after a lost connection
        (reads, idempotent switches); others fail with :class:`ConnectionLost`, unless the link
        was lost before they were sent (:class:`CommandNotSent`): those run after a reconnect.
        """

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Host:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class LineReader(Protocol):
    """What pump_lines reads: asyncio's StreamReader (bytes) or asyncssh's SSHReader."""

    async def readline(self) -> bytes | str: ...


async def pump_lines(
    stream: LineReader, name: str, sink: list[str], on_line: LineCallback | None
) -> None:
    """Read a stream line by line into ``sink``, reporting each line as it arrives."""
    while True:
        raw = await stream.readline()
        if not raw:
            return
        line = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        line = line.rstrip("\r\n")
        sink.append(line)
        if on_line is not None:
            on_line(name, line)
