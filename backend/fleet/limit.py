"""``--hosts`` and ``--roles``: the part of the fleet a command acts on.

A limited config lists only the chosen hosts and carries their names in ``config.limit``,
so every front (deploy, rollback, validate, unlock, the room) acts on those alone, and the
engine records the limit in the plan, the journal and each host's record: a later rollback
or resume without ``--hosts`` acts on the same hosts, never on the untouched ones.
"""

from __future__ import annotations

from dataclasses import replace
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config


class LimitError(ValueError):
    """An unknown host or role, or a choice that leaves no host; the message names it."""


def split(values: tuple[str, ...] | list[str] | None) -> list[str]:
    """``--hosts a,b --hosts c`` -> [a, b, c]."""
    return [v.strip() for value in values or () for v in value.split(",") if v.strip()]


def limit_hosts(config: Config, hosts: list[str], roles: list[str]) -> Config:
    """The config with only the hosts named (names or shell patterns such as ``web-*``)
    that have one of ``roles``; both empty: the config unchanged."""
    if not hosts and not roles:
        return config
    names = [h.name for h in config.hosts]
    for pattern in hosts:
        if not any(fnmatchcase(n, pattern) for n in names):
            raise LimitError(f"--hosts: unknown host {pattern!r} (hosts: {', '.join(names)})")
    known_roles = sorted({r for h in config.hosts for r in h.roles})
    for role in roles:
        if role not in known_roles:
            raise LimitError(f"--roles: unknown role {role!r} (roles: {', '.join(known_roles)})")
    chosen = [
        h
        for h in config.hosts
        if (not hosts or any(fnmatchcase(h.name, p) for p in hosts))
        and (not roles or set(roles) & set(h.roles))
    ]
    if not chosen:
        raise LimitError(
            f"--hosts {','.join(hosts)} --roles {','.join(roles)}: no host matches both"
        )
    limited = replace(config, hosts=chosen)
    limited.limit = [h.name for h in chosen]
    limited.fleet = names
    return limited
