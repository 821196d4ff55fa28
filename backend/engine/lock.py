"""The deploy lock: one protocol with a lease, on every host and, when configured, in Redis.

On a host: an atomic ``mkdir`` with ``owner.json`` (deployment, operator, machine, pid and a
random token) and a ``heartbeat`` file. In Redis: ``SET NX PX`` with the same owner, a TTL.
While the run lives, :class:`Lease` renews both every ``[lock] heartbeat_seconds``, each
renewal checking the token (a Lua script in Redis), and release is compare-and-delete. A
lock whose heartbeat is fresh is never treated as abandoned; one older than
``[lock] lease_seconds`` is shown as stale with its holder and age, and cleared by a person
with ``portal-ops unlock`` (a live one only with ``--force`` and the deployment id typed).
A renewal that finds another token marks the lease lost; :meth:`Lease.check` (the fencing
hook called before every mutating command) then stops the run instead of letting it race.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from typing import Any

from ..config import Config
from ..identity import Operator
from ..lockowner import LockHolder, parse_owner, redis_key
from ..lockowner import held_lock as held_lock  # re-exported: deploy.py imports it here
from ..transport import Host, TransportError
from .layout import Layout

# ARGV: token, TTL in ms, and the owner to set again where the key is gone (empty: do not).
# A key that expired while this run was slow (or a run that never set it: a rollback of a
# finished deployment, a resume after a crash) is set again: the hosts' locks, renewed in
# the same beat, are the authority, and no other run can hold them.
_RENEW = """
local v = redis.call('GET', KEYS[1])
if not v then
  if ARGV[3] == '' then return 0 end
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
  return 2
end
if string.find(v, ARGV[1], 1, true) then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
local v = redis.call('GET', KEYS[1])
if v and string.find(v, ARGV[1], 1, true) then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


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
    return status, parse_owner(lines[1:])


def _redis(config: Config) -> Any:
    import redis

    assert config.redis.url
    return redis.Redis.from_url(config.redis.url, socket_timeout=3, socket_connect_timeout=3)


def _ttl_ms(config: Config) -> int:
    return int(config.lock.lease_seconds * 1000)


def redis_acquire(config: Config, owner: dict[str, Any]) -> dict[str, Any] | None:
    """Take the Redis lock with a TTL (the lease); returns the holder when it is taken."""
    if not config.redis.url:
        return None
    client = _redis(config)
    try:
        if client.set(redis_key(config), json.dumps(owner), nx=True, px=_ttl_ms(config)):
            return None
        return redis_holder(config, client) or {"raw": "expired meanwhile"}
    finally:
        client.close()


def redis_holder(config: Config, client: Any = None) -> dict[str, Any] | None:
    """The Redis lock's owner, with ``age`` derived from its remaining TTL; None if free."""
    if not config.redis.url:
        return None
    own = client is None
    client = client or _redis(config)
    try:
        raw = client.get(redis_key(config))
        if raw is None:
            return None
        ttl = client.pttl(redis_key(config))
        owner = parse_owner(raw.decode(errors="replace").splitlines())
        if ttl is not None and ttl >= 0:
            owner["age"] = max(0, int(config.lock.lease_seconds - ttl / 1000))
        elif ttl == -1:
            owner["age"] = -1  # no expiry: left by a release without a lease, never renewed
        return owner
    finally:
        if own:
            client.close()


def redis_claim(config: Config, owner: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """Take the Redis lock for ``owner``'s deployment, or adopt it where that deployment
    already holds it (a crashed or failing run of it). Returns the token to renew it with,
    and the holder when another deployment has it."""
    if not config.redis.url:
        return owner["token"], None
    client = _redis(config)
    try:
        if client.set(redis_key(config), json.dumps(owner), nx=True, px=_ttl_ms(config)):
            return owner["token"], None
        holder = redis_holder(config, client)
        if holder is None:  # expired meanwhile: take it
            return redis_claim(config, owner)
        if holder.get("deployment_id") == owner.get("deployment_id") and holder.get("token"):
            return str(holder["token"]), None
        return owner["token"], holder
    finally:
        client.close()


def redis_renew(config: Config, token: str, owner: dict[str, Any] | None = None) -> bool:
    """Extend the TTL if the lock still holds ``token`` (atomic, in Lua); where the key is
    gone and ``owner`` is given, set it again for ``owner``. False: another holder has it."""
    if not config.redis.url:
        return True
    client = _redis(config)
    again = json.dumps(owner | {"token": token}) if owner else ""
    try:
        return bool(client.eval(_RENEW, 1, redis_key(config), token, _ttl_ms(config), again))
    finally:
        client.close()


def redis_release(config: Config, token: str) -> bool:
    """Compare-and-delete (atomic, in Lua): never removes another holder's lock."""
    if not config.redis.url or not token:
        return False
    client = _redis(config)
    try:
        return bool(client.eval(_RELEASE, 1, redis_key(config), token))
    finally:
        client.close()


class LockLost(Exception):
    """The run's lock now holds another token (or is gone): it must stop, not race."""


class Lease:
    """Keeps a run's lock alive: renews it on its hosts and in Redis every heartbeat, and
    notices when it is no longer ours (fencing: :meth:`check` before each mutating step)."""

    def __init__(
        self,
        config: Config,
        hosts: dict[str, Host],
        tokens: dict[str, str],
        redis_owner: dict[str, Any] | None = None,
    ) -> None:
        """``tokens``: host name -> the token of the lock held there (usually all one);
        ``redis_owner``: the owner of the Redis lock (its ``token`` the one to renew)."""
        self.config = config
        self.hosts = hosts
        self.tokens = dict(tokens)
        self.redis_owner = redis_owner
        self.lost: str | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._beat())

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def check(self) -> None:
        """The fencing hook: raise :class:`LockLost` once the lock is not ours any more."""
        if self.lost:
            raise LockLost(self.lost)

    async def _beat(self) -> None:
        # the Redis lock at once: a run that adopted the hosts' locks (a rollback of a
        # finished deployment, a resume) holds it from its first step, not its first beat
        await self.renew_redis()
        while True:
            await asyncio.sleep(self.config.lock.heartbeat_seconds)
            await self.renew()

    async def renew_redis(self) -> None:
        if not self.config.redis.url or not self.redis_owner or self.lost:
            return
        token = str(self.redis_owner["token"])
        try:
            ok = await asyncio.to_thread(redis_renew, self.config, token, self.redis_owner)
        except Exception:  # Redis down: the host locks are the authority
            return
        if not ok:
            self.lost = "the Redis deploy lock is no longer ours (taken by another run)"

    async def renew(self) -> None:
        """One beat: the hosts' locks first (the authority), then Redis unless one was lost."""

        async def one(name: str) -> None:
            try:
                layout = Layout(self.config.deploy_path(self.config.host(name)))
                result = await self.hosts[name].run(
                    layout.lock_renew(self.tokens[name]), timeout=30, retry_safe=True
                )
            except TransportError:
                return  # an unreachable host fails the run's own commands there
            if "LOST" in result.stdout:
                self.lost = f"the deploy lock on {name} is no longer ours (removed or taken over)"

        await asyncio.gather(*(one(n) for n in self.tokens))
        await self.renew_redis()


async def read_locks(config: Config, hosts: dict[str, Host]) -> list[LockHolder]:
    """Every holder of the lock: on each host, and in Redis (host ``"redis"``)."""
    holders: list[LockHolder] = []
    lease = config.lock.lease_seconds
    for name, host in hosts.items():
        layout = Layout(config.deploy_path(config.host(name)))
        try:
            result = await host.run(layout.lock_read(), timeout=30, retry_safe=True)
        except TransportError:
            continue
        text = result.stdout.strip()
        if text and text != "ABSENT":
            holders.append(LockHolder(name, parse_owner(text.splitlines()), lease))
    if config.redis.url:
        owner = await asyncio.to_thread(redis_holder, config)
        if owner is not None:
            holders.append(LockHolder("redis", owner, lease))
    return holders
