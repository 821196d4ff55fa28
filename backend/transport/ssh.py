"""Commands on remote hosts over SSH with asyncssh: one connection per host, reused.

Like ssh(1): what a host entry leaves out (user, port, even the address behind an alias)
comes from ssh_config, then from OpenSSH's defaults. Hosts behind the same jump host share
one login to it (its channels carry every tunnel), and logins in flight are bounded so a
large fleet does not trip the servers' MaxStartups. Host keys are verified against
known_hosts by default; turning that off is an explicit, per-host choice in the config.
Lost connections are re-established with backoff and the command retried only when the
caller marked it safe to repeat; a session channel the server refuses (MaxSessions) is
waited for on the same connection, so the commands already running on it go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import glob
import os
import re
import shlex
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .base import (
    CommandNotSent,
    CommandResult,
    CommandTimeout,
    ConnectionLost,
    Host,
    HostKeyMismatch,
    HostUnreachable,
    LineCallback,
    TransportError,
    command_tag,
    pump_lines,
)
from .remote_group import (
    kill_pidfile,
    kill_tagged,
    new_pidfile,
    parse_claimed,
    parse_left,
    wrap,
)
from .session import COMMAND as SESSION_COMMAND
from .session import RemoteSession, SessionLost, SessionUnavailable

if TYPE_CHECKING:
    import asyncssh
else:  # without the linker searches asyncssh's import starts: see the module
    from .asyncssh_import import import_asyncssh

    asyncssh = import_asyncssh()

T = TypeVar("T")
_LOST = (
    asyncssh.ConnectionLost,
    asyncssh.DisconnectError,
    asyncssh.ChannelOpenError,
    BrokenPipeError,
    ConnectionResetError,
    EOFError,
)


class SessionLinkLost(ConnectionLost):
    """The link dropped under a command sent to the host's session: it may not have started
    (a frame written to a link already gone), which only the host's pid file can tell."""


class ChannelRefused(TransportError):
    """The server kept refusing a new session on a live connection (MaxSessions)."""


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
    config_file: str | None = None  # None: ~/.ssh/config, as ssh(1)
    max_connections: int = 5  # logins in flight at once, per event loop
    reuse_session: bool = True  # one remote shell per host for its commands (.session)


class _Links:
    """What the hosts of one event loop share: the login gate and the bastion connections."""

    def __init__(self) -> None:
        self.gates: dict[int, asyncio.Semaphore] = {}
        self.bastions: dict[tuple[Any, ...], _Bastion] = {}

    def gate(self, limit: int) -> asyncio.Semaphore:
        return self.gates.setdefault(limit, asyncio.Semaphore(limit))


_LINKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Links] = weakref.WeakKeyDictionary()


def _links() -> _Links:
    loop = asyncio.get_running_loop()
    links = _LINKS.get(loop)
    if links is None:
        links = _LINKS[loop] = _Links()
    return links


class _Bastion:
    """One login to a jump host, shared by every host behind it and reopened when lost.

    Each host behind it holds a reference from connect() to close(); the last one out
    closes the login.
    """

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.conn: asyncssh.SSHClientConnection | None = None
        self.users: set[int] = set()
        self.lock = asyncio.Lock()

    async def open(
        self, user: Host, login: Callable[[], Awaitable[asyncssh.SSHClientConnection]]
    ) -> asyncssh.SSHClientConnection:
        async with self.lock:
            self.users.add(id(user))
            if self.conn is None or self.conn.is_closed():
                self.conn = await login()
            return self.conn

    async def release(self, user: Host) -> None:
        async with self.lock:
            self.users.discard(id(user))
            if self.users or self.conn is None:
                return
            conn, self.conn = self.conn, None
        await _close_quietly(conn)


class SSHHost(Host):
    def __init__(
        self,
        name: str,
        address: str,
        port: int | None = None,
        user: str | None = None,
        jump: str | None = None,
        options: SSHOptions | None = None,
    ) -> None:
        self.name = name
        self.address = address
        self.port = port  # None: ssh_config's Port, else 22
        self.user = user  # None: ssh_config's User, else the local login name
        self.jump = jump
        self.options = options or SSHOptions()
        self._conn: asyncssh.SSHClientConnection | None = None
        self._bastion: _Bastion | None = None
        self._lock = asyncio.Lock()
        self._session: RemoteSession | None = None
        self._session_opening = False
        self._session_ok = self.options.reuse_session

    # -- connection -------------------------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        opts = self.options
        kwargs: dict[str, Any] = {
            "connect_timeout": opts.connect_timeout,
            "keepalive_interval": opts.keepalive_interval or None,
            "keepalive_count_max": 3,
        }
        if opts.config_file:
            kwargs["config"] = [str(Path(opts.config_file).expanduser())]
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
        gate = _links().gate(self.options.max_connections)
        if self.jump:
            # the bastion first, outside the gate: its own login takes a gate slot, and a
            # host holding a slot while it waited for the bastion could starve it
            kwargs["tunnel"] = await self._tunnel(dict(kwargs), gate)
        async with gate:
            return await self._login(
                self.address, _given(port=self.port, username=self.user), kwargs, self._where()
            )

    async def _tunnel(
        self, kwargs: dict[str, Any], gate: asyncio.Semaphore
    ) -> asyncssh.SSHClientConnection:
        assert self.jump is not None
        user, host, port = parse_jump(self.jump)
        key = (self.jump, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        bastion = _links().bastions.setdefault(key, _Bastion(self.jump))
        self._bastion = bastion

        async def login() -> asyncssh.SSHClientConnection:
            async with gate:
                where = f"jump host {self.jump}"
                return await self._login(host, _given(port=port, username=user), kwargs, where)

        return await bastion.open(self, login)

    async def _login(
        self, host: str, given: dict[str, Any], kwargs: dict[str, Any], where: str
    ) -> asyncssh.SSHClientConnection:
        kwargs = {**kwargs, **_cipher_preference(kwargs.get("config"))}
        try:
            return await asyncssh.connect(host, **given, **kwargs)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise HostKeyMismatch(
                self.name,
                f"host key of {where} not verified ({exc.reason});"
                " refusing to connect. Check known_hosts; set verify_host_key = false for"
                " this host only if you accept the risk.",
            ) from None
        except asyncssh.PermissionDenied as exc:
            user = await _login_name(host, given, kwargs)
            raise HostUnreachable(
                self.name, f"authentication failed for {user} at {where}: {exc.reason}"
            ) from None
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
            raise HostUnreachable(self.name, f"cannot connect to {where}: {reason}") from None

    def _where(self) -> str:
        where = f"{self.address}:{self.port}" if self.port else self.address
        return f"{where} via {self.jump}" if self.jump else where

    async def reconnect(self) -> None:
        await self._drop()
        await self.connect()

    async def _drop(self) -> None:
        """Abort this host's own connection; the shared bastion is reopened only if lost."""
        self._session = None  # it ends with the connection
        async with self._lock:
            if self._conn is not None:
                self._conn.abort()
            self._conn = None

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and self._conn is not None and not self._conn.is_closed():
            await session.end()
        async with self._lock:
            if self._conn is not None:
                await _close_quietly(self._conn)
            self._conn = None
            bastion, self._bastion = self._bastion, None
        if bastion is not None:
            await bastion.release(self)

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
        # any command may be sent again when the link was lost before it was sent at all
        attempts = 1 + self.options.max_reconnects
        delay = 0.5
        # the command runs in its own process group on the host, killed with the session;
        # each attempt has a pid file of its own (a kill claims the name of the one it stops)
        pidfile: str | None = None
        for attempt in range(1, attempts + 1):
            try:
                if self._conn is None:
                    await self.connect()
                if pidfile:
                    await self._confirm_dead(pidfile)  # the cut-off run first, then the retry
                pidfile = new_pidfile(command_tag.get()) if input is None else None
                session = await self._free_session(on_line, timeout) if pidfile else None
                if session is not None and pidfile is not None:
                    done = await self._run_in_session(session, command, timeout, on_line, pidfile)
                    if done is not None:
                        return done
                remote = wrap(command, pidfile) if pidfile else command
                return await self._run_once(remote, timeout, on_line, input, pidfile, command)
            except SessionLinkLost:
                if attempt == attempts:
                    raise
                if not retry_safe:
                    # sent again only if the host shows it never started (its frame was
                    # written to a link already gone): the claim makes sure it never will
                    if pidfile is None or not await self._never_started(pidfile):
                        raise
                    pidfile = None
                    continue  # logged in again by the check itself
                if on_line is not None:
                    on_line("stderr", f"[portal-ops] connection lost; reconnecting in {delay:.1f}s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 8.0)
                await self._drop()
            except (ConnectionLost, HostUnreachable) as exc:
                again = retry_safe or isinstance(exc, CommandNotSent)
                if isinstance(exc, HostKeyMismatch) or not again or attempt == attempts:
                    raise
                if on_line is not None:
                    on_line("stderr", f"[portal-ops] connection lost; reconnecting in {delay:.1f}s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 8.0)
                await self._drop()
        raise AssertionError("unreachable")

    # -- the host's session (.session): one remote shell for its commands, one at a time ------

    async def _free_session(
        self, on_line: LineCallback | None, timeout: float | None
    ) -> RemoteSession | None:
        """The host's session when it is free (opened on first use), else None: the command
        then takes a channel of its own (the session is busy, being opened, or unusable)."""
        if not self._session_ok or self._session_opening:
            return None
        session = self._session
        if session is not None and session.busy:
            return None
        if session is not None and session.usable():
            return session
        self._end_session()
        self._session_opening = True
        try:
            limit = timeout or self.options.command_timeout
            proc = await self._open_process(
                SESSION_COMMAND, None, on_line, time.monotonic() + limit
            )
            session = self._session = RemoteSession(proc)
        finally:
            self._session_opening = False
        return session

    def _end_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    async def _run_in_session(
        self,
        session: RemoteSession,
        command: str,
        timeout: float | None,
        on_line: LineCallback | None,
        pidfile: str,
    ) -> CommandResult | None:
        """``command`` in the session, with a channel's outcomes: a timeout or a cancel ends
        the session (its shell stops the command) and confirms the command dead; a session
        killed under it is a killed command, a link lost is ``ConnectionLost``. None: this
        host's login shell cannot hold a session (nothing ran): take a channel."""
        started = time.monotonic()
        out: list[str] = []
        err: list[str] = []
        limit = timeout or self.options.command_timeout

        def emit(stream: str, line: str) -> None:
            (out if stream == "stdout" else err).append(line)
            if on_line is not None:
                on_line(stream, line)

        name = pidfile.rpartition("/")[2]
        async with session.lock:
            try:
                status = await asyncio.wait_for(session.run(name, command, emit), limit)
            except SessionUnavailable:
                self._session_ok = False
                self._end_session()
                if self._conn is not None and self._conn.is_closed():
                    await self._drop()
                    raise CommandNotSent(
                        self.name, "connection lost before the command was sent"
                    ) from None
                return None
            except asyncio.CancelledError:
                self._end_session()
                await self._stop_remote(None, pidfile)
                raise
            except TimeoutError:
                self._end_session()
                stopped = await self._stop_remote(None, pidfile)
                raise CommandTimeout(
                    self.name, f"command timed out after {limit:g}s and {stopped}"
                ) from None
            except SessionLost:
                with contextlib.suppress(Exception):  # its exit status or signal, if any
                    await asyncio.wait_for(session.proc.wait_closed(), 2)
                self._end_session()
                if session.proc.exit_signal is None:
                    # no signal: the link went (or the shell ended without a word)
                    await self._drop()
                    raise SessionLinkLost(
                        self.name, "connection lost while the command ran"
                    ) from None
                status = 128 + 9  # killed on the host (a kill stops the session's group)
            except _LOST as exc:
                await self._drop()
                raise SessionLinkLost(self.name, f"connection lost: {exc}") from None
        return CommandResult(
            host=self.name,
            command=command,
            exit_status=status,
            stdout="\n".join(out),
            stderr="\n".join(err),
            seconds=time.monotonic() - started,
        )

    async def _open_process(
        self, command: str, input: str | None, on_line: LineCallback | None, deadline: float
    ) -> asyncssh.SSHClientProcess[str]:
        """A session channel for ``command``; a refusal on a live connection is waited out.

        A server at MaxSessions refuses the channel but keeps the connection and the
        sessions on it: dropping the connection would kill those neighbours' commands.
        """
        delay = REFUSED_FIRST_WAIT
        told = False
        while True:
            conn = self._conn
            assert conn is not None
            if conn.is_closed():  # dropped while idle (between phases): nothing was sent
                await self._drop()
                raise CommandNotSent(self.name, "connection lost before the command was sent")
            try:
                return await conn.create_process(
                    command, input=input, encoding="utf-8", errors="replace"
                )
            except asyncssh.ChannelOpenError as exc:
                if conn.is_closed():  # the channel never opened: the command never started
                    await self._drop()
                    raise CommandNotSent(self.name, f"connection lost: {exc}") from None
                if time.monotonic() + delay > deadline:
                    raise ChannelRefused(
                        self.name, f"the server kept refusing a session: {exc.reason}"
                    ) from None
                if on_line is not None and not told:
                    on_line("stderr", f"[portal-ops] channel refused ({exc.reason}); waiting")
                    told = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, REFUSED_MAX_WAIT)
            except _LOST as exc:
                await self._drop()
                raise ConnectionLost(self.name, f"connection lost: {exc}") from None

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

    async def _never_started(self, pidfile: str) -> bool:
        """Over a new login: whether the command of ``pidfile`` never started (its name is
        claimed now, so it never will); if it did start, it is stopped and confirmed dead."""
        try:
            await self._drop()
            await self.connect()
            output = await self._raw(kill_pidfile(pidfile))
        except TransportError:
            return False
        self._dead_or_raise(output)
        return parse_claimed(output)

    async def _confirm_dead(self, pidfile: str) -> None:
        """Stop the command of ``pidfile`` wherever its start got to (not started yet: it
        never will) and wait until it is gone."""
        self._dead_or_raise(await self._raw(kill_pidfile(pidfile)))

    async def kill_tagged(self, prefix: str) -> int:
        """Stop every leftover command of a deployment (a crashed or cut-off run) and wait
        until gone; how many were still running. Commands of the asking run are spared."""
        output = await self._raw(kill_tagged(prefix + ".", exclude=command_tag.get()))
        return self._dead_or_raise(output)

    def _dead_or_raise(self, output: str) -> int:
        left, alive = parse_left(output)
        if alive:
            raise CommandTimeout(
                self.name, f"{alive} earlier command(s) could not be stopped on the host"
            )
        return left

    async def _stop_remote(self, proc: Any, pidfile: str | None) -> str:
        """A timeout or a cancel: close the channel (the watcher kills the group) and, while
        the link is up, kill the group ourselves and wait until it is gone. What happened."""
        if proc is not None:
            proc.close()
        if pidfile is None:
            return "its session was closed"
        try:
            await asyncio.shield(self._confirm_dead(pidfile))
        except CommandTimeout as exc:
            return f"it could NOT be stopped ({exc})"
        except (TransportError, asyncio.CancelledError):
            return "its session was closed (the host's watcher stops it)"  # link gone
        return "was killed on the host"

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
            proc = await self._open_process(command, input, on_line, started + limit)
        except asyncio.CancelledError:
            # cancelled while the session opened: the command may be starting on the host
            if pidfile is not None:
                await self._stop_remote(None, pidfile)
            raise
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
            stopped = await self._stop_remote(proc, pidfile)
            raise CommandTimeout(
                self.name, f"command timed out after {limit:g}s and {stopped}"
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


REFUSED_FIRST_WAIT = 0.05  # seconds before asking again for a refused session channel
REFUSED_MAX_WAIT = 1.0


def parse_jump(spec: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` (``[v6]:port`` too) -> (user, host, port); None: ssh_config's."""
    user, _, rest = spec.rpartition("@")
    match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:]+)(?::(\d+))?", rest)
    if not match:
        raise ValueError(f"jump host {spec!r} is not [user@]host[:port]")
    host = match[1] or match[3]
    port = match[2] or match[4]
    return (user or None, host, int(port) if port else None)


# Offered first when ssh_config names no Ciphers: asyncssh's chacha20-poly1305 makes four
# cipher contexts per packet in Python, AES-GCM one per key. Both are secure and in
# OpenSSH's defaults; asyncssh's other defaults follow ("^").
PREFERRED_CIPHERS = "^aes128-gcm@openssh.com,aes256-gcm@openssh.com"
_CIPHERS_LINE = re.compile(r"^[ \t]*ciphers[ \t]*[ \t=]", re.I | re.M)
_INCLUDE_LINE = re.compile(r"^[ \t]*include[ \t]*[ \t=][ \t]*(.+)$", re.I | re.M)


def _cipher_preference(paths: list[str] | None) -> dict[str, Any]:
    """AES-GCM first, unless the user's ssh_config names ``Ciphers``: an explicit choice
    here would override it. The files asyncssh reads (the given ones, else ~/.ssh/config)
    and what they Include are read as text, nothing evaluated (a ``Match exec`` runs only
    when asyncssh reads the config); a ``Ciphers`` line anywhere, for any host, or a file
    that cannot be read, leaves the choice to ssh_config and asyncssh."""
    if paths is None:
        default = Path("~", ".ssh", "config").expanduser()
        paths = [str(default)] if os.access(default, os.R_OK) else []
    if _names_ciphers(tuple((p, _mtime(Path(p).expanduser())) for p in paths)):
        return {}
    return {"encryption_algs": PREFERRED_CIPHERS}


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


@functools.lru_cache(maxsize=8)
def _names_ciphers(files: tuple[tuple[str, int], ...]) -> bool:
    """Read once per set of files as they are (path, mtime): every host's login asks, and
    50 hosts would read the same files 50 times on the event loop; an edit is read again
    (the files it Includes are not watched)."""
    todo = [Path(p).expanduser() for p, _ in files]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return True  # unknown: not ours to override
        if _CIPHERS_LINE.search(text):
            return True
        for line in _INCLUDE_LINE.finditer(text):
            try:
                words = shlex.split(line[1], comments=True)
            except ValueError:
                return True
            for word in words:
                if "%" in word or "$" in word:  # tokens ssh expands: not followed here
                    return True
                found = Path(word).expanduser()
                if not found.is_absolute():  # relative to ~/.ssh, as ssh(1) reads it
                    found = Path("~", ".ssh").expanduser() / found
                todo.extend(Path(match) for match in glob.glob(str(found)))
    return False


def _given(**values: Any) -> dict[str, Any]:
    """Only the settings the config gives: asyncssh then falls back to ssh_config."""
    return {k: v for k, v in values.items() if v is not None}


async def _login_name(host: str, given: dict[str, Any], kwargs: dict[str, Any]) -> str:
    """The user a login tried: the config's, else ssh_config's, else the local login name."""
    settings = {k: v for k, v in kwargs.items() if k in ("config", "connect_timeout")}
    try:
        options = await asyncssh.SSHClientConnectionOptions.construct(
            host=host, **given, **settings
        )
    except Exception:
        return given.get("username", "the default user")
    return str(options.username)


async def _close_quietly(conn: asyncssh.SSHClientConnection) -> None:
    conn.close()
    try:
        await asyncio.wait_for(conn.wait_closed(), 2)
    except (TimeoutError, Exception):
        pass


def _quiet(future: asyncio.Future[T]) -> asyncio.Future[T]:
    """Mark a gather's outcome as seen: when a timeout or a cancelled caller abandons it,
    asyncio must not log "exception was never retrieved" for every stream reader."""
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future
