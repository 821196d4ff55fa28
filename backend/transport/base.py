"""The one interface every transport offers the engine, the checks and the monitor."""

from __future__ import annotations

import abc
import codecs
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


class ChunkReader(Protocol):
    """What pump_lines reads: asyncio's StreamReader (bytes) or asyncssh's SSHReader (str)."""

    async def read(self, n: int = -1) -> bytes | str: ...


CHUNK = 65536  # one read takes whatever has arrived, up to this much


async def pump_lines(
    stream: ChunkReader, name: str, sink: list[str], on_line: LineCallback | None
) -> None:
    """Read a stream into ``sink`` line by line, reporting each line as it arrives.

    One read per chunk, split here: a reader's ``readline`` costs a call (and a buffer
    search) per line, and asyncio's stops at 64 KiB. A line ends at ``\n`` (``\r`` before
    it dropped); the last one may lack it. Bytes are decoded incrementally, so a character
    cut across two chunks stays whole.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending: list[str] = []  # the start of a line whose end has not arrived yet
    while True:
        raw = await stream.read(CHUNK)
        if not raw:
            break
        text = decoder.decode(raw) if isinstance(raw, bytes) else raw
        if "\n" not in text:
            pending.append(text)
            continue
        if pending:
            pending.append(text)
            text = "".join(pending)
            pending.clear()
        lines = text.split("\n")
        rest = lines.pop()
        if rest:
            pending.append(rest)
        for line in lines:
            line = line.rstrip("\r")
            sink.append(line)
            if on_line is not None:
                on_line(name, line)
    pending.append(decoder.decode(b"", final=True))
    last = "".join(pending)
    if last:  # a last line without its newline
        last = last.rstrip("\r")
        sink.append(last)
        if on_line is not None:
            on_line(name, last)
