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
``{p}:flags:rev``                   STRING  the store revision (audit seq) published last
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
    def channel(self) -> str:
        return f"{self.prefix}:flags:changes"

    def usage_minute(self, name: str, minute: int) -> str:
        return f"{self.prefix}:usage:{name}:m:{minute}"

    def usage_hour(self, name: str, hour: int) -> str:
        return f"{self.prefix}:usage:{name}:h:{hour}"

    def usage_last(self, name: str) -> str:
        return f"{self.prefix}:usage:{name}:last"


# KEYS: flags, emergency, version, rev. ARGV: channel, op, name, data JSON or "", revision.
# Returns the new version; 0 when a newer revision is already published (a late writer);
# -1 when Redis missed earlier changes (the caller then publishes a snapshot).
PUBLISH_CHANGE = """
local cur = tonumber(redis.call('GET', KEYS[4]) or '0')
local rev = tonumber(ARGV[5])
if rev <= cur then return 0 end
if cur ~= rev - 1 then return -1 end
local op = ARGV[2]
if op == 'upsert' then redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
elseif op == 'delete' then redis.call('HDEL', KEYS[1], ARGV[3])
elseif op == 'emergency' then redis.call('SET', KEYS[2], ARGV[4])
elseif op == 'restore' then redis.call('DEL', KEYS[2]) end
redis.call('SET', KEYS[4], ARGV[5])
local v = redis.call('INCR', KEYS[3])
local data = ARGV[4]
if data == '' then data = 'null' end
redis.call('PUBLISH', ARGV[1],
  '{"v":' .. v .. ',"op":"' .. op .. '","name":"' .. ARGV[3] .. '","data":' .. data .. '}')
return v
"""

# KEYS: flags, emergency, version, rev. ARGV: channel, revision, emergency JSON or "",
# then name, flag JSON pairs. Replaces everything; skipped (0) if a newer revision is there.
PUBLISH_SNAPSHOT = """
local cur = tonumber(redis.call('GET', KEYS[4]) or '0')
if tonumber(ARGV[2]) < cur then return 0 end
redis.call('DEL', KEYS[1])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3]) else redis.call('DEL', KEYS[2]) end
redis.call('SET', KEYS[4], ARGV[2])
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
