"""Commands on this machine through asyncio subprocesses (single-box use and the demo)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import TypeVar

from .base import CommandResult, CommandTimeout, Host, LineCallback, pump_lines

T = TypeVar("T")


class LocalHost(Host):
    def __init__(
        self, name: str, address: str = "localhost", command_timeout: float = 300.0
    ) -> None:
        self.name = name
        self.address = address
        self.command_timeout = command_timeout

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
        input: str | None = None,
        retry_safe: bool = False,
    ) -> CommandResult:
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # so a timeout can kill the whole process group
        )
        assert proc.stdout is not None and proc.stderr is not None  # both are PIPE above
        out: list[str] = []
        err: list[str] = []
        if input is not None and proc.stdin is not None:
            proc.stdin.write(input.encode())
            await proc.stdin.drain()
            proc.stdin.close()
        try:
            await asyncio.wait_for(
                _quiet(
                    asyncio.gather(
                        pump_lines(proc.stdout, "stdout", out, on_line),
                        pump_lines(proc.stderr, "stderr", err, on_line),
                        proc.wait(),
                    )
                ),
                timeout or self.command_timeout,
            )
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            raise CommandTimeout(
                self.name, f"command timed out after {timeout or self.command_timeout:.0f}s"
            ) from None
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(proc.wait(), 5)  # reap it: no zombie, no open pipes
            raise
        return CommandResult(
            host=self.name,
            command=command,
            exit_status=proc.returncode if proc.returncode is not None else -1,
            stdout="\n".join(out),
            stderr="\n".join(err),
            seconds=time.monotonic() - started,
        )


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _quiet(future: asyncio.Future[T]) -> asyncio.Future[T]:
    """Mark a gather's outcome as seen: when a timeout or a cancelled caller abandons it,
    asyncio must not log "exception was never retrieved" for every stream reader."""
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future
