"""The Redis key layout and pub/sub channel that running apps read flags from.

Documented in docs/flags.md so the PHP portal can read the same keys. ``{p}`` is the
``[redis] prefix`` (default ``portal-ops``):

==================================  ======  ==============================================
key                                 type    content
==================================  ======  ==============================================
``{p}:flags``                       HASH    flag name -> flag JSON (``Flag.to_json``)
``{p}:flags:emergency``             STRING  emergency JSON while the kill switch is on;
                                            absent otherwise
``{p}:flags:version``               STRING  integer, +1 on every publication
``{p}:flags:rev``                   STRING  global revision, +1 on every publication from
                                            any machine (absent: Redis holds no data)
``{p}:flags:stores``                HASH    store id -> its revision (audit seq) published
``{p}:flags:origin``                HASH    flag name (``*``: kill switch) -> the id of the
                                            store that wrote it last
``{p}:flags:changes``               CHANNEL one JSON message per publication
``{p}:usage:{name}:m:{minute}``     HASH    ``yes``, ``no``: evaluations in that minute
                                            (``minute`` = unix time // 60); 48 h TTL
``{p}:usage:{name}:h:{hour}``       HASH    ``yes:{company}``, ``no:{company}`` per hour
                                            (``hour`` = unix time // 3600); 8 day TTL
``{p}:usage:{name}:last``           STRING  unix time of the last counted evaluation
==================================  ======  ==============================================

Channel messages: ``{"v": version, "op": "upsert"|"delete"|"emergency"|"restore"|"snapshot",
"name": flag or "", "data": flag JSON | emergency JSON | null}``. Writes and the message
go out in one Lua script, so a subscriber that sees version ``v`` can trust that the keys
hold at least that state; a gap in ``v`` (or ``snapshot``) means: reload the keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

MINUTE_TTL = 48 * 3600
HOUR_TTL = 8 * 24 * 3600


@dataclass(frozen=True)
class Keys:
    prefix: str = "portal-ops"

    @property
    def flags(self) -> str:
        return f"{self.prefix}:flags"

    @property
    def emergency(self) -> str:
        return f"{self.prefix}:flags:emergency"

    @property
    def version(self) -> str:
        return f"{self.prefix}:flags:version"

    @property
    def revision(self) -> str:
        return f"{self.prefix}:flags:rev"

    @property
    def stores(self) -> str:
        return f"{self.prefix}:flags:stores"

    @property
    def origin(self) -> str:
        return f"{self.prefix}:flags:origin"

    @property
    def channel(self) -> str:
        return f"{self.prefix}:flags:changes"

    def usage_minute(self, name: str, minute: int) -> str:
        return f"{self.prefix}:usage:{name}:m:{minute}"

    def usage_hour(self, name: str, hour: int) -> str:
        return f"{self.prefix}:usage:{name}:h:{hour}"

    def usage_last(self, name: str) -> str:
        return f"{self.prefix}:usage:{name}:last"


# Several machines (each with its own store) publish to one Redis. Each store has an id;
# Redis keeps, per store, the last store revision it published ({p}:flags:stores) and, per
# flag, which store wrote it last ({p}:flags:origin, "*" for the kill switch). The global
# revision {p}:flags:rev and the version go up on every publication, whoever sends it.

# KEYS: flags, emergency, version, rev, stores, origin.
# ARGV: channel, op, name, data JSON or "", store revision, store id.
# Returns the new version; 0 when this store already published a newer revision (a late
# process: the caller sends its whole store instead); -1 when Redis missed this store's
# earlier changes (the caller publishes a snapshot).
PUBLISH_CHANGE = """
local cur = tonumber(redis.call('HGET', KEYS[5], ARGV[6]) or '0')
local rev = tonumber(ARGV[5])
if rev <= cur then return 0 end
if cur ~= rev - 1 then return -1 end
local op = ARGV[2]
if op == 'upsert' then
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
  redis.call('HSET', KEYS[6], ARGV[3], ARGV[6])
elseif op == 'delete' then
  redis.call('HDEL', KEYS[1], ARGV[3])
  redis.call('HDEL', KEYS[6], ARGV[3])
elseif op == 'emergency' then
  redis.call('SET', KEYS[2], ARGV[4])
  redis.call('HSET', KEYS[6], '*', ARGV[6])
elseif op == 'restore' then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[6], '*', ARGV[6])
else
  return redis.error_reply('unknown publication op ' .. op)
end
redis.call('HSET', KEYS[5], ARGV[6], ARGV[5])
redis.call('INCR', KEYS[4])
local v = redis.call('INCR', KEYS[3])
local data = ARGV[4]
if data == '' then data = 'null' end
redis.call('PUBLISH', ARGV[1],
  '{"v":' .. v .. ',"op":"' .. op .. '","name":"' .. ARGV[3] .. '","data":' .. data .. '}')
return v
"""

# KEYS: flags, emergency, version, rev, stores, origin.
# ARGV: channel, store revision, store id, emergency JSON or "", then name, flag JSON pairs.
# Sends one store whole, without undoing other machines' work: a flag another store wrote
# last stays as it is, a flag this store wrote and no longer has is removed, and the kill
# switch is only lifted if this store switched it on (or nobody is known to have).
# Returns the new version; 0 when this store already published a newer revision.
PUBLISH_SNAPSHOT = """
local me = ARGV[3]
local cur = tonumber(redis.call('HGET', KEYS[5], me) or '0')
if tonumber(ARGV[2]) < cur then return 0 end
local mine = {}
for i = 5, #ARGV, 2 do mine[ARGV[i]] = true end
local origin = redis.call('HGETALL', KEYS[6])
for i = 1, #origin, 2 do
  local name, who = origin[i], origin[i + 1]
  if name ~= '*' and who == me and not mine[name] then
    redis.call('HDEL', KEYS[1], name)
    redis.call('HDEL', KEYS[6], name)
  end
end
for i = 5, #ARGV, 2 do
  local who = redis.call('HGET', KEYS[6], ARGV[i])
  if (not who) or who == me or redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    redis.call('HSET', KEYS[6], ARGV[i], me)
  end
end
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[2], ARGV[4])
  redis.call('HSET', KEYS[6], '*', me)
else
  local who = redis.call('HGET', KEYS[6], '*')
  if (not who) or who == me then redis.call('DEL', KEYS[2]) end
end
redis.call('HSET', KEYS[5], me, ARGV[2])
redis.call('INCR', KEYS[4])
local v = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[1], '{"v":' .. v .. ',"op":"snapshot","name":"","data":null}')
return v
"""


def connect(url: str, timeout: float = 1.0) -> redis.Redis:
    """A client that fails fast instead of retrying: callers decide what a failure means."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=max(timeout, 2.0),
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def redact(url: str | None) -> str:
    """``redis://host:port/db`` without user or password: safe for logs and messages."""
    if not url:
        return "(none)"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        path = parts.path if parts.path not in ("", "/") else ""
        return f"{parts.scheme}://{host}{port}{path}"
    except ValueError:
        return "(unparsable url)"


def decode_message(raw: str | bytes) -> dict[str, Any] | None:
    """A channel message, or None when it is not one of ours (never raises)."""
    try:
        msg = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if not isinstance(msg, dict) or not isinstance(msg.get("v"), int) or "op" not in msg:
        return None
    return msg
