"""What every check is given: the config, the connected hosts, an HTTP client, and helpers
that make the common cases (a command on some hosts, a URL through the public address)
uniform, bounded in time and free of secrets."""

from __future__ import annotations

import asyncio
import posixpath
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..config import Config, HostConfig
from ..hostpaths import HostPaths
from ..lazy import lazy_module
from ..redact import redact
from ..shell import exports as shell_exports
from ..shell import q
from ..transport import CommandResult, CommandTimeout, Host, TransportError
from .batch import HostBatcher
from .config import CommandProbe, ValidationConfig
from .model import Outcome, Phase, errored, failed, passed

if TYPE_CHECKING:
    import httpx
else:  # loaded on first use: checks that make no request never pay for it
    httpx = lazy_module("httpx")

LOCAL = "portal-ops"  # the host name of rows measured on the portal-ops machine itself
NO_DIR_EXIT = 97  # a probe's working directory is missing: could not be measured


def ssl_context(config: Config) -> ssl.SSLContext:
    """The system's trust store, plus ``[validation] ca_file`` for private CAs."""
    context = ssl.create_default_context()
    if config.validation.ca_file:
        context.load_verify_locations(cafile=config.validation.ca_file)
    return context


PerHost = Callable[[str], Awaitable[Outcome | list[Outcome]]]


@dataclass
class Context:
    config: Config
    phase: Phase
    hosts: dict[str, Host]  # connected hosts being validated, by name
    unreachable: dict[str, TransportError]  # hosts that could not be connected
    local: Host  # the portal-ops machine, for probes with on = "local"
    # makes the HTTP client, on the first request (see ``http``)
    http_client: Callable[[], httpx.AsyncClient]
    journal_path: Path
    deployment_id: str | None = None
    release: str | None = None
    revision: str | None = None
    since: float | None = None
    baseline: dict[str, float] | None = None  # Q05/Q06 values measured before the switch
    # hosts whose deploy lock the deployment took in this very phase (P15 needs no read)
    locked: frozenset[str] = frozenset()
    secrets: set[str] = field(default_factory=set)
    _sessions: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    _commands: asyncio.Semaphore | None = None
    _batchers: dict[str, HostBatcher] = field(default_factory=dict)
    _http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """One client for every check, made when the first one asks: a run whose checks
        make no request (no public URL, no status page) loads no HTTP library and builds
        no TLS context."""
        if self._http is None:
            self._http = self.http_client()
        return self._http

    async def close(self) -> None:
        """Close the HTTP client, if a check made it."""
        if self._http is not None:
            await self._http.aclose()

    @property
    def vc(self) -> ValidationConfig:
        return self.config.validation

    @property
    def timeout(self) -> float:
        return self.vc.timeout

    # -- hosts --------------------------------------------------------------------------------

    @property
    def host_names(self) -> list[str]:
        """Every host being validated, reachable or not, in config order."""
        names = set(self.hosts) | set(self.unreachable)
        return [h.name for h in self.config.hosts if h.name in names]

    def host_config(self, name: str) -> HostConfig:
        return self.config.host(name)

    def deploy_path(self, name: str) -> str:
        return self.config.deploy_path(self.host_config(name))

    def layout(self, name: str) -> HostPaths:
        return HostPaths(self.deploy_path(name))

    def release_dir(self, name: str) -> str:
        """Where the code being validated lives: the new release after the switch, else
        ``current`` (the live release, before a deployment)."""
        layout = self.layout(name)
        if self.phase == "post" and self.release:
            return layout.release(self.release)
        return layout.current

    def primary(self) -> str | None:
        names = self.host_names
        if not names:
            return None
        preferred = self.config.primary_host().name
        if preferred in names:
            return preferred
        for name in names:
            if self.host_config(name).primary:
                return name
        return names[0]

    def select(
        self, on: Literal["primary", "all", "local"], roles: list[str] | None = None
    ) -> list[str]:
        if on == "local":
            return [LOCAL]
        if on == "primary":
            primary = self.primary()
            return [primary] if primary else []
        names = self.host_names
        if roles:
            names = [n for n in names if set(roles) & set(self.host_config(n).roles)]
        return names

    async def sh(self, name: str, command: str, *, timeout: float | None = None) -> CommandResult:
        """Run a read-only command on a host (or ``LOCAL``), a few at a time per connection
        (OpenSSH allows 10 sessions per connection by default). On a host, the commands
        of the checks asking at the same moment go as one script (one exec channel)."""
        host = self.local if name == LOCAL else self.hosts[name]
        sem = self._sessions.setdefault(name, asyncio.Semaphore(self.vc.max_sessions_per_host))
        if self._commands is None:
            self._commands = asyncio.Semaphore(self.vc.max_commands)
        if name != LOCAL:  # the checks starting together share one script (batch.py)
            if name not in self._batchers:
                self._batchers[name] = HostBatcher(host, self._commands)
            return await self._batchers[name].run(command, timeout or self.timeout)
        async with sem, self._commands:
            return await host.run(command, timeout=timeout or self.timeout, retry_safe=True)

    async def each_host(
        self, func: PerHost, names: list[str] | None = None, *, needs_ssh: bool = True
    ) -> list[Outcome]:
        """Run ``func`` for every host at once; each host is timed and bounded on its own,
        and an unreachable host or a failure to measure is an ``error`` row, never a pass.
        ``needs_ssh=False`` for checks that only talk HTTP to the host."""

        async def one(name: str) -> list[Outcome]:
            if needs_ssh and name in self.unreachable:
                return [errored(f"host unreachable: {self.unreachable[name]}", host=name)]
            started = time.perf_counter()
            try:
                result = await asyncio.wait_for(func(name), self.timeout)
                outcomes = result if isinstance(result, list) else [result]
            except (TimeoutError, CommandTimeout):
                outcomes = [errored(f"no answer within {self.timeout:g}s")]
            except TransportError as exc:
                outcomes = [errored(f"could not run the check: {exc}")]
            except Exception as exc:  # a check's own bug must not pass silently
                outcomes = [errored(f"could not measure: {type(exc).__name__}: {exc}")]
            elapsed = (time.perf_counter() - started) * 1000
            for outcome in outcomes:
                outcome.host = outcome.host or name
                if outcome.duration_ms is None:
                    outcome.duration_ms = elapsed
            return outcomes

        targets = self.host_names if names is None else names
        groups = await asyncio.gather(*(one(n) for n in targets))
        return [o for group in groups for o in group]

    # -- configured commands -------------------------------------------------------------------

    def probe_command(self, name: str, probe: CommandProbe) -> str:
        """The probe's command in its working directory, with the portal's environment."""
        if name == LOCAL:
            return f"cd {q(probe.cwd)} && {probe.command}" if probe.cwd else probe.command
        if probe.cwd is None:
            directory = self.release_dir(name)
        elif probe.cwd.startswith("/"):
            directory = probe.cwd
        else:
            directory = posixpath.join(self.deploy_path(name), probe.cwd)
        missing = f"portal-ops: no directory {directory}"
        exports = shell_exports(self.config.portal.env)
        return (
            f"cd {q(directory)} 2>/dev/null || {{ echo {q(missing)} >&2; exit {NO_DIR_EXIT}; }}; "
            f"{exports}{probe.command}"
        )

    async def run_probe(
        self, probe: CommandProbe, default_on: Literal["primary", "all", "local"]
    ) -> list[Outcome]:
        """Run a configured command where it belongs: exit 0 (and ``expect`` matched) passes."""
        names = self.select(probe.on or default_on, probe.roles)
        threshold = "exit 0" + (f" and output ~ /{probe.expect}/" if probe.expect else "")

        async def one(name: str) -> Outcome:
            result = await self.sh(name, self.probe_command(name, probe))
            return self.judge(result, probe, threshold)

        if not names:
            return [errored(f"no host matches roles {probe.roles} for `{probe.command}`")]
        return await self.each_host(one, names)

    def judge(self, result: CommandResult, probe: CommandProbe, threshold: str) -> Outcome:
        if result.exit_status == NO_DIR_EXIT and "portal-ops: no directory" in result.stderr:
            return errored(result.stderr.strip().removeprefix("portal-ops: "), threshold=threshold)
        shown = f"`{probe.command}`"
        if not result.ok:
            tail = self.redact(result.tail(3)) or "no output"
            return failed(
                f"{shown} exited {result.exit_status}: {tail}",
                value=result.exit_status,
                unit="exit",
                threshold=threshold,
            )
        if probe.expect and not re.search(probe.expect, result.stdout + "\n" + result.stderr):
            tail = self.redact(result.tail(3)) or "no output"
            return failed(
                f"{shown} output does not match /{probe.expect}/: {tail}",
                value=0,
                unit="exit",
                threshold=threshold,
            )
        first = self.redact(result.stdout.strip().splitlines()[0]) if result.stdout.strip() else ""
        return passed(
            f"{shown} ok" + (f": {first[:120]}" if first else ""),
            value=0,
            unit="exit",
            threshold=threshold,
        )

    # -- HTTP ----------------------------------------------------------------------------------

    def public(self, path: str) -> str | None:
        """``path`` through the public URL (a full URL is taken as is); None without one."""
        if path.startswith(("http://", "https://")):
            return path
        base = self.config.portal.public_url
        if not base:
            return None
        return base.rstrip("/") + "/" + path.lstrip("/")

    # -- secrets -------------------------------------------------------------------------------

    def secret(self, value: str | None) -> str | None:
        """Remember a secret so that no message, value or meta of the report can show it."""
        if value:
            self.secrets.add(value)
        return value

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= 3:
                text = text.replace(secret, "***")
        return redact(text)
