"""Hosts from config, connected together before a run.

Every SSH host of one event loop shares the login gate (``[ssh] max_connections``) and
the connection to its jump host, so connecting them "all at once" stays within what the
servers accept.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .base import Host, TransportError
from .local import LocalHost

if TYPE_CHECKING:  # the transport stays importable without the config models
    from ..config import Config, HostConfig


def make_host(config: Config, host: HostConfig) -> Host:
    if host.transport == "local":
        return LocalHost(host.name, host.address, command_timeout=config.ssh.command_timeout)
    from .ssh import SSHHost, SSHOptions  # asyncssh (~0.2 s) only when a host needs SSH

    s = config.ssh
    options = SSHOptions(
        known_hosts=s.known_hosts,
        verify_host_key=host.verify_host_key,
        identity_files=list(s.identity_files),
        use_agent=s.use_agent,
        connect_timeout=s.connect_timeout,
        keepalive_interval=s.keepalive_interval,
        command_timeout=s.command_timeout,
        max_reconnects=s.max_reconnects,
        config_file=s.config_file,
        max_connections=s.max_connections,
        reuse_session=s.reuse_session,
    )
    return SSHHost(host.name, host.address, host.port, host.user, host.jump, options)


async def connect_all(hosts: list[Host]) -> dict[str, TransportError]:
    """Connect every host at once; returns the failures by host name (empty when all up)."""
    results = await asyncio.gather(*(h.connect() for h in hosts), return_exceptions=True)
    failures: dict[str, TransportError] = {}
    for host, result in zip(hosts, results, strict=True):
        if isinstance(result, TransportError):
            failures[host.name] = result
        elif isinstance(result, BaseException):
            failures[host.name] = TransportError(host.name, str(result))
    return failures
