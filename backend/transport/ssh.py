"""Commands on remote hosts over SSH with asyncssh: one connection per host, reused.

Host keys are verified against known_hosts by default; turning that off is an explicit,
per-host choice in the config. Lost connections are re-established with backoff and the
command retried only when the caller marked it safe to repeat.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from .base import (
    CommandResult,
    CommandTimeout,
    ConnectionLost,
    Host,
    HostKeyMismatch,
    HostUnreachable,
    LineCallback,
    command_tag,
    pump_lines,
)
from .remote_group import kill_pidfile, kill_tagged, new_pidfile, parse_left, wrap

_LOST = (
    asyncssh.ConnectionLost,
    asyncssh.DisconnectError,
    asyncssh.ChannelOpenError,
    BrokenPipeError,
    ConnectionResetError,
    EOFError,
)


@dataclass
class SSHOptions:
    known_hosts: str | None = None  # None: ~/.ssh/known_hosts
    verify_host_key: bool = True
    identity_files: list[str] = field(default_factory=list)
    use_agent: bool = True
    connect_timeout: float = 10.0
    keepalive_interval: float = 15.0
    command_timeout: float = 300.0
    max_reconnects: int = 3


class SSHHost(Host):
    def __init__(
        self,
        name: str,
        address: str,
        port: int = 22,
        user: str | None = None,
        jump: str | None = None,
        options: SSHOptions | None = None,
    ) -> None:
        self.name = name
        self.address = address
        self.port = port
        self.user = user
        self.jump = jump
        self.options = options or SSHOptions()
        self._conn: asyncssh.SSHClientConnection | None = None
        self._tunnel: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()

    # -- connection -------------------------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        opts = self.options
        kwargs: dict[str, Any] = {
            "connect_timeout": opts.connect_timeout,
            "keepalive_interval": opts.keepalive_interval or None,
            "keepalive_count_max": 3,
        }
        if not opts.verify_host_key:
            kwargs["known_hosts"] = None
        elif opts.known_hosts:
            kwargs["known_hosts"] = str(Path(opts.known_hosts).expanduser())
        if opts.identity_files:
            kwargs["client_keys"] = [str(Path(p).expanduser()) for p in opts.identity_files]
        if not opts.use_agent:
            kwargs["agent_path"] = None
        return kwargs

    async def connect(self) -> None:
        async with self._lock:
            if self._conn is not None:
                return
            self._conn = await self._open()

    async def _open(self) -> asyncssh.SSHClientConnection:
        kwargs = self._connect_kwargs()
        try:
            if self.jump:
                user, host, port = parse_jump(self.jump)
                self._tunnel = await asyncssh.connect(host, port=port, username=user, **kwargs)
                kwargs["tunnel"] = self._tunnel
            return await asyncssh.connect(
                self.address, port=self.port, username=self.user, **kwargs
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise HostKeyMismatch(
                self.name,
                f"host key of {self.address}:{self.port} not verified ({exc.reason});"
                " refusing to connect. Check known_hosts; set verify_host_key = false for"
                " this host only if you accept the risk.",
            ) from None
        except asyncssh.PermissionDenied as exc:
            raise HostUnreachable(
                self.name, f"authentication failed for {self.user or 'default user'}: {exc.reason}"
            ) from None
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
            raise HostUnreachable(
                self.name, f"cannot connect to {self.address}:{self.port}: {reason}"
            ) from None

    async def reconnect(self) -> None:
        await self._drop()
        await self.connect()

    async def _drop(self) -> None:
        async with self._lock:
            for conn in (self._conn, self._tunnel):
                if conn is not None:
                    conn.abort()
            self._conn = None
            self._tunnel = None

    async def close(self) -> None:
        async with self._lock:
            for conn in (self._conn, self._tunnel):
                if conn is not None:
                    conn.close()
                    try:
                        await asyncio.wait_for(conn.wait_closed(), 2)
                    except (TimeoutError, Exception):
                        pass
            self._conn = None
            self._tunnel = None

    # -- commands ---------------------------------------------------------------------------

    async def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        on_line: LineCallback | None = None,
        input: str | None = None,
        retry_safe: bool = False,
    ) -> CommandResult:
        attempts = 1 + (self.options.max_reconnects if retry_safe else 0)
        delay = 0.5
        # the command runs in its own process group on the host, killed with the session
        pidfile = new_pidfile(command_tag.get()) if input is None else None
        remote = wrap(command, pidfile) if pidfile else command
        for attempt in range(1, attempts + 1):
            try:
                if self._conn is None:
                    await self.connect()
                if attempt > 1 and pidfile:
                    await self._confirm_dead(pidfile)  # the cut-off run first, then the retry
                return await self._run_once(remote, timeout, on_line, input, pidfile, command)
            except (ConnectionLost, HostUnreachable) as exc:
                if isinstance(exc, HostKeyMismatch) or attempt == attempts:
                    raise
                if on_line is not None:
                    on_line("stderr", f"[portal-ops] connection lost; reconnecting in {delay:.1f}s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 8.0)
                await self._drop()
        raise AssertionError("unreachable")

    async def _raw(self, command: str, timeout: float = 30) -> str:
        """A short command outside the pid-file wrapper (the kills themselves)."""
        if self._conn is None:
            await self.connect()
        assert self._conn is not None
        try:
            result = await asyncio.wait_for(self._conn.run(command, check=False), timeout)
        except _LOST as exc:
            await self._drop()
            raise ConnectionLost(self.name, f"connection lost: {exc}") from None
        except TimeoutError:
            raise CommandTimeout(self.name, "could not stop the earlier command") from None
        return str(result.stdout or "")

    async def _confirm_dead(self, pidfile: str) -> None:
        await self._raw(kill_pidfile(pidfile))

    async def kill_tagged(self, prefix: str) -> int:
        """Stop every leftover command of a deployment (a crashed or cut-off run) and wait
        until gone; how many were still running. Commands of the asking run are spared."""
        return parse_left(await self._raw(kill_tagged(prefix + ".", exclude=command_tag.get())))

    async def _stop_remote(self, proc: Any, pidfile: str | None) -> None:
        """A timeout or a cancel: close the channel (the watcher kills the group) and, while
        the link is up, kill the group ourselves and wait until it is gone."""
        proc.close()
        if pidfile is None:
            return
        try:
            await asyncio.shield(self._confirm_dead(pidfile))
        except (Exception, asyncio.CancelledError):
            pass  # link gone: the closed session's watcher does it

    async def _run_once(
        self,
        command: str,
        timeout: float | None,
        on_line: LineCallback | None,
        input: str | None,
        pidfile: str | None = None,
        shown: str | None = None,
    ) -> CommandResult:
        assert self._conn is not None
        started = time.monotonic()
        out: list[str] = []
        err: list[str] = []
        limit = timeout or self.options.command_timeout
        try:
            proc = await self._conn.create_process(
                command, input=input, encoding="utf-8", errors="replace"
            )
        except _LOST as exc:
            await self._drop()
            raise ConnectionLost(self.name, f"connection lost: {exc}") from None
        try:
            await asyncio.wait_for(
                _quiet(
                    asyncio.gather(
                        pump_lines(proc.stdout, "stdout", out, on_line),
                        pump_lines(proc.stderr, "stderr", err, on_line),
                        proc.wait_closed(),
                    )
                ),
                limit,
            )
        except asyncio.CancelledError:
            # a cancelled step (or follower, tail -F) must not leave the remote side running
            await self._stop_remote(proc, pidfile)
            raise
        except TimeoutError:
            await self._stop_remote(proc, pidfile)
            raise CommandTimeout(
                self.name, f"command timed out after {limit:.0f}s and was killed on the host"
            ) from None
        except _LOST as exc:
            await self._drop()
            raise ConnectionLost(self.name, f"connection lost: {exc}") from None
        status = proc.exit_status
        if status is None:
            if proc.exit_signal is None and self._conn is not None and self._conn.is_closed():
                await self._drop()
                raise ConnectionLost(self.name, "connection lost while the command ran")
            if proc.exit_signal is None:
                await self._drop()
                raise ConnectionLost(self.name, "the command ended without an exit status")
            status = 128 + 9
        return CommandResult(
            host=self.name,
            command=shown or command,
            exit_status=status,
            stdout="\n".join(out),
            stderr="\n".join(err),
            seconds=time.monotonic() - started,
        )


def parse_jump(spec: str) -> tuple[str | None, str, int]:
    """``[user@]host[:port]`` -> (user, host, port)."""
    user, _, rest = spec.rpartition("@")
    host, _, port = rest.partition(":")
    return (user or None, host, int(port) if port else 22)


def _quiet(future: asyncio.Future[object]) -> asyncio.Future[object]:
    """Mark a gather's outcome as seen: when a timeout or a cancelled caller abandons it,
    asyncio must not log "exception was never retrieved" for every stream reader."""
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future
