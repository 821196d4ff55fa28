"""Publication of the store to Redis: the bastion side of the key layout in ``layout``.

SQLite stays the source of truth. A change is published right after it is committed; if
Redis missed earlier changes (it was down, or restarted empty) the whole store goes out
as a snapshot instead, so Redis converges to the store whatever happened in between.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import redis

from .layout import PUBLISH_CHANGE, PUBLISH_SNAPSHOT, Keys, connect, redact
from .model import Emergency
from .store import FlagStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Publication:
    """What happened to one publication: ``ok`` False means apps did not get it (yet)."""

    ok: bool
    version: int = 0  # the Redis version it went out as (0: nothing sent)
    snapshot: bool = False  # the whole store was sent
    error: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "version": self.version,
            "snapshot": self.snapshot,
            "error": self.error,
        }


NOT_CONFIGURED = Publication(ok=False, error="Redis is not configured ([redis] url)")


class Publisher:
    def __init__(self, url: str, prefix: str = "portal-ops", timeout: float = 1.0) -> None:
        self.url = url
        self.keys = Keys(prefix)
        self.redis = connect(url, timeout)
        self._change = self.redis.register_script(PUBLISH_CHANGE)
        self._snapshot = self.redis.register_script(PUBLISH_SNAPSHOT)

    def change(
        self, store: FlagStore, revision: int, op: str, name: str, data: dict[str, object] | None
    ) -> Publication:
        """Publish one committed change (``revision`` = its audit seq)."""
        k = self.keys
        payload = json.dumps(data, separators=(",", ":")) if data is not None else ""
        try:
            version = int(
                self._change(
                    keys=[k.flags, k.emergency, k.version, k.revision],
                    args=[k.channel, op, name, payload, revision],
                )
            )
            if version == -1:
                return self.snapshot(store)
            return Publication(ok=True, version=version)
        except redis.RedisError as exc:
            return self._failed(exc)

    def snapshot(self, store: FlagStore) -> Publication:
        """Replace what Redis holds with the whole store, and tell subscribers to reload."""
        k = self.keys
        revision, flags, emergency = store.snapshot()
        args: list[object] = [k.channel, revision, _emergency_json(emergency)]
        for flag in flags:
            args += [flag.name, json.dumps(flag.to_json(), separators=(",", ":"))]
        try:
            version = int(
                self._snapshot(keys=[k.flags, k.emergency, k.version, k.revision], args=args)
            )
            return Publication(ok=True, version=version, snapshot=True)
        except redis.RedisError as exc:
            return self._failed(exc)

    def sync(self, store: FlagStore) -> Publication:
        """Publish a snapshot only if Redis is behind the store (cheap: one GET)."""
        try:
            published = int(self.redis.get(self.keys.revision) or 0)
        except redis.RedisError as exc:
            return self._failed(exc)
        if published == store.revision() and published > 0:
            return Publication(ok=True)
        return self.snapshot(store)

    def close(self) -> None:
        try:
            self.redis.close()
        except redis.RedisError:
            pass

    def _failed(self, exc: Exception) -> Publication:
        # the message names the server, never the URL's credentials
        error = f"Redis unreachable at {redact(self.url)}: {type(exc).__name__}: {exc}"
        log.warning("flag publication failed: %s", error)
        return Publication(ok=False, error=error)


def _emergency_json(emergency: Emergency) -> str:
    return json.dumps(emergency.to_json(), separators=(",", ":")) if emergency.active else ""
