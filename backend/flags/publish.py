"""Publication of the store to Redis: the bastion side of the key layout in ``layout``.

SQLite stays the source of truth. A change is published right after it is committed; if
Redis missed earlier changes (it was down, or restarted empty) the whole store goes out
as a snapshot instead, so Redis converges to the store whatever happened in between.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from .layout import PUBLISH_CHANGE, PUBLISH_SNAPSHOT, Keys, connect, redact
from .model import Emergency
from .store import FlagStore

if TYPE_CHECKING:
    from ..config import Config

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


@dataclass(frozen=True)
class Verification:
    """Redis against the store (the post-deployment check Q16 reads these fields)."""

    ok: bool
    mismatches: list[str] = field(default_factory=list)
    checked: int = 0
    message: str = ""
    store_revision: int = 0
    published_revision: int = 0


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
        """Publish one committed change (``revision`` = its audit seq).

        If Redis missed earlier changes of this store, or this store already published a
        newer revision (a late process), the whole store goes out instead, which holds
        this change too. ``ok`` is True only when Redis wrote it.
        """
        k = self.keys
        payload = json.dumps(data, separators=(",", ":")) if data is not None else ""
        try:
            version = int(
                self._change(
                    keys=[k.flags, k.emergency, k.version, k.revision, k.stores, k.origin],
                    args=[k.channel, op, name, payload, revision, store.store_id],
                )
            )
        except redis.RedisError as exc:
            return self._failed(exc)
        if version <= 0:
            return self.snapshot(store)
        return Publication(ok=True, version=version)

    def snapshot(self, store: FlagStore) -> Publication:
        """Replace what Redis holds with the whole store, and tell subscribers to reload."""
        k = self.keys
        revision, flags, emergency = store.snapshot()
        args: list[str | int | float] = [
            k.channel,
            revision,
            store.store_id,
            _emergency_json(emergency),
        ]
        for flag in flags:
            args += [flag.name, json.dumps(flag.to_json(), separators=(",", ":"))]
        try:
            version = int(
                self._snapshot(
                    keys=[k.flags, k.emergency, k.version, k.revision, k.stores, k.origin],
                    args=args,
                )
            )
        except redis.RedisError as exc:
            return self._failed(exc)
        if version <= 0:
            # never report a publication that wrote nothing as done
            error = (
                f"nothing written: Redis holds a newer revision of this store ({store.store_id})"
                f" than its revision {revision} (is a copy of journal.db publishing too?)"
            )
            log.warning("flag publication failed: %s", error)
            return Publication(ok=False, error=error)
        return Publication(ok=True, version=version, snapshot=True)

    def sync(self, store: FlagStore) -> Publication:
        """Publish a snapshot only if Redis is behind the store (cheap: one GET)."""
        try:
            published = int(self.redis.hget(self.keys.stores, store.store_id) or 0)
        except redis.RedisError as exc:
            return self._failed(exc)
        if published == store.revision() and published > 0:
            return Publication(ok=True)
        return self.snapshot(store)

    def verify(self, store: FlagStore) -> Verification:
        """Compare what Redis serves with the store, flag by flag (raises if unreachable)."""
        k = self.keys
        revision, flags, emergency = store.snapshot()
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(k.flags)
        pipe.get(k.emergency)
        pipe.hget(k.stores, store.store_id)
        pipe.hgetall(k.origin)
        raw_flags, raw_emergency, published, origin = pipe.execute()
        me = store.store_id
        mismatches: list[str] = []
        for flag in flags:
            doc = raw_flags.get(flag.name)
            if doc is None:
                mismatches.append(flag.name)
            elif _loads(doc) != flag.to_json() and origin.get(flag.name, me) == me:
                mismatches.append(flag.name)  # (another machine's later change is no fault)
        ours = {f.name for f in flags}
        mismatches += sorted(  # deleted here, still served
            n for n in set(raw_flags) - ours if origin.get(n, me) == me
        )
        served = bool(raw_emergency)
        if served != emergency.active and (emergency.active or origin.get("*", me) == me):
            mismatches.append("(emergency disable)")
        if published is None:
            message = "Redis holds no flag data (never published, or restarted empty)"
        elif mismatches:
            message = f"{len(mismatches)} flag(s) differ between Redis and the store"
        else:
            message = f"{len(flags)} flag(s) in Redis match the store (revision {revision})"
        ok = not mismatches and published is not None
        return Verification(ok, mismatches, len(flags), message, revision, int(published or 0))

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


def verify_publication(config: Config) -> Verification:
    """Do the flags Redis serves match the store? For validation check Q16.

    Raises ``redis.RedisError`` when Redis is unreachable (the check reports an error).
    """
    from ..paths import state_dir

    if not config.redis.url:
        return Verification(False, [], 0, "no Redis configured ([redis] url)")
    store = FlagStore(Path(state_dir(config.state.dir)) / "journal.db")
    publisher = Publisher(config.redis.url, config.redis.prefix)
    try:
        return publisher.verify(store)
    finally:
        publisher.close()
        store.close()


def _loads(doc: str) -> Any:
    try:
        return json.loads(doc)
    except ValueError:
        return None
