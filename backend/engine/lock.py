"""The deploy lock: on every host (atomic mkdir with an owner token) and, when Redis is
configured, in Redis too (SET NX). Released only with the token that took it; a stale lock
is cleared by a person with ``portal-ops unlock``, never automatically."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..identity import Operator
from ..transport import Host, TransportError
from .layout import Layout


@dataclass
class LockHolder:
    host: str
    owner: dict[str, Any]

    def describe(self) -> str:
        o = self.owner
        since = o.get("since")
        when = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if since else "unknown time"
        )
        who = o.get("operator") or "unknown operator"
        return (
            f"held on {self.host} by {who} for deployment {o.get('deployment_id', '?')}"
            f" since {when} (pid {o.get('pid', '?')} on {o.get('machine', '?')})"
        )


def new_owner(deployment_id: str, operator: Operator, pid: int) -> dict[str, Any]:
    return {
        "token": secrets.token_hex(12),
        "deployment_id": deployment_id,
        "operator": str(operator),
        "machine": operator.host,
        "pid": pid,
        "since": time.time(),
    }


def parse_lock_output(output: str) -> tuple[str, dict[str, Any]]:
    lines = output.strip().splitlines()
    status = lines[0].strip() if lines else ""
    owner: dict[str, Any] = {}
    if len(lines) > 1:
        try:
            owner = json.loads("\n".join(lines[1:]))
        except ValueError:
            owner = {"raw": "\n".join(lines[1:])[:200]}
    return status, owner


def redis_key(config: Config) -> str:
    return f"{config.redis.prefix}:lock:{config.portal.name}"


def redis_acquire(config: Config, owner: dict[str, Any]) -> dict[str, Any] | None:
    """Take the Redis lock; returns the current holder when it is taken already."""
    if not config.redis.url:
        return None
    import redis

    client = redis.Redis.from_url(config.redis.url, socket_timeout=3, socket_connect_timeout=3)
    try:
        if client.set(redis_key(config), json.dumps(owner), nx=True):
            return None
        raw = client.get(redis_key(config))
        return json.loads(raw) if raw else {"raw": "unknown"}
    finally:
        client.close()


def redis_release(config: Config, token: str, force: bool = False) -> None:
    if not config.redis.url:
        return
    import redis

    client = redis.Redis.from_url(config.redis.url, socket_timeout=3, socket_connect_timeout=3)
    try:
        raw = client.get(redis_key(config))
        if raw and (force or json.loads(raw).get("token") == token):
            client.delete(redis_key(config))
    finally:
        client.close()


async def read_locks(config: Config, hosts: dict[str, Host]) -> list[LockHolder]:
    holders: list[LockHolder] = []
    for name, host in hosts.items():
        layout = Layout(config.deploy_path(config.host(name)))
        try:
            result = await host.run(layout.lock_read(), timeout=30, retry_safe=True)
        except TransportError:
            continue
        text = result.stdout.strip()
        if text and text != "ABSENT":
            try:
                holders.append(LockHolder(name, json.loads(text)))
            except ValueError:
                holders.append(LockHolder(name, {"raw": text[:200]}))
    return holders
