"""FlagClient: the app side. Loads every flag once, stays current from Redis pub/sub,
evaluates in-process (no network call per evaluation), counts usage in batches.

One background thread owns the Redis connections: it subscribes, loads the keys, applies
each published change (or reloads on a gap or a snapshot), flushes usage counts every
``flush_interval`` seconds, and reconnects with backoff. Request threads only read two
attributes that the thread swaps whole (copy-on-write), so evaluation takes no lock.

When Redis goes away the client keeps serving the last known values (reason STALE in
:meth:`resolve`); when it is back it reloads. If Redis came back empty (restarted without
persistence) it keeps the last known values until the bastion publishes again
(``portal-ops feature publish``, or any change).

Usage::

    client = FlagClient("redis://127.0.0.1:6379/0", prefix="portal-ops")
    client.start()
    ctx = Context(company="AB12A", user="42")
    if client.is_enabled("ui-improvements", ctx): ...
    client.close()
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from .evaluate import evaluate, not_ready
from .layout import Keys, connect, decode_message, redact
from .model import EMPTY_CONTEXT, Context, Emergency, Flag, Reason, Resolution
from .usage import UsageCounter

log = logging.getLogger(__name__)

Listener = Callable[[str, list[str]], Any]  # (event, flag names); events below
READY, CHANGED, STALE, ERROR = "ready", "changed", "stale", "error"


class FlagClient:
    def __init__(
        self,
        redis_url: str,
        prefix: str = "portal-ops",
        *,
        flush_interval: float = 5.0,
        count_usage: bool = True,
        max_backoff: float = 2.0,
        health_check_interval: int = 10,
    ) -> None:
        self.url = redis_url
        self.keys = Keys(prefix)
        self.flush_interval = flush_interval
        self.count_usage = count_usage
        self.max_backoff = max_backoff
        self.health_check_interval = health_check_interval
        # read by request threads; replaced whole by the listener thread
        self._flags: dict[str, Flag] = {}
        self._emergency = False
        self.emergency_state = Emergency()
        self.version = 0
        self.ready = threading.Event()  # set once flag data was loaded
        self.connected = False
        self.stale = False  # data loaded once, but Redis is gone or holds none right now
        self.last_error = ""
        self.last_sync: float | None = None
        self.usage = UsageCounter(self.keys)
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._redis: redis.Redis | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, wait: float = 2.0) -> bool:
        """Start the background thread; wait up to ``wait`` s for the first load. Never raises."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="flag-client", daemon=True)
            self._thread.start()
        return self.ready.wait(wait) if wait > 0 else self.ready.is_set()

    def close(self, flush: bool = True) -> None:
        """Stop the thread and send the last usage counts (best effort)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if flush and self.count_usage:
            self._flush()
        if self._redis is not None:
            self._redis.close()

    def __enter__(self) -> FlagClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Called from the client thread on ready/changed/stale/error; must not block."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # -- evaluation (hot path) ------------------------------------------------------------

    def is_enabled(self, name: str, ctx: Context = EMPTY_CONTEXT, default: bool = False) -> bool:
        """True if ``ctx`` gets the flag. No I/O, no lock, never raises."""
        flag = self._flags.get(name)
        value = evaluate(flag, ctx, self._emergency, default)[0]
        if flag is not None and self.count_usage:  # inlined _count(): this is the hot path
            counts = self.usage.counts
            key = (name, ctx.company, value)
            n = counts.get(key)
            if n is None:
                if len(counts) >= self.usage.max_keys:
                    key = (name, None, value)
                n = counts.get(key, 0)
            counts[key] = n + 1
        return value

    def resolve(self, name: str, ctx: Context = EMPTY_CONTEXT, default: bool = False) -> Resolution:
        """The value with its reason and rule (STALE when Redis is gone, ERROR before data)."""
        if not self.ready.is_set():
            return not_ready(default)
        flag = self._flags.get(name)
        res = evaluate(flag, ctx, self._emergency, default)
        if flag is not None:
            if self.count_usage:
                self._count(name, ctx.company, res.value)
            if self.stale and res.reason != Reason.ERROR:
                res = res._replace(reason=Reason.STALE)
        return res

    def _count(self, name: str, company: str | None, value: bool) -> None:
        """One evaluation, in memory. Past ``max_keys`` distinct (flag, company, value)
        triples, new companies are counted without their id: totals stay exact and the
        memory stays bounded however many tenants the portal has."""
        counts = self.usage.counts
        key = (name, company, value)
        n = counts.get(key)
        if n is None:
            if len(counts) >= self.usage.max_keys:
                key = (name, None, value)
            n = counts.get(key, 0)
        counts[key] = n + 1

    def flags(self) -> dict[str, Flag]:
        return dict(self._flags)

    def status(self) -> dict[str, Any]:
        """For an app's health endpoint: never includes the Redis URL's credentials."""
        return {
            "redis": redact(self.url),
            "ready": self.ready.is_set(),
            "connected": self.connected,
            "stale": self.stale,
            "version": self.version,
            "flags": len(self._flags),
            "emergency": self._emergency,
            "last_sync": self.last_sync,
            "last_error": self.last_error,
        }

    # -- the listener thread --------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            pubsub = None
            try:
                client = self._client()
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.keys.channel)  # before loading: nothing is missed
                self._load(client)
                self.connected = True
                backoff = 0.05
                self._listen(pubsub)
            except (redis.RedisError, OSError) as exc:
                self._lost(exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            except Exception as exc:  # never let the thread die: the app keeps evaluating
                log.exception("flag client: unexpected error")
                self._lost(exc)
                self._stop.wait(self.max_backoff)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        pass

    def _client(self) -> redis.Redis:
        if self._redis is None:
            self._redis = connect(self.url)
        return self._redis

    def _listen(self, pubsub: redis.client.PubSub) -> None:
        next_flush = time.monotonic() + self.flush_interval
        last_ping = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            wait = max(0.0, min(0.25, next_flush - now))
            msg = pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
            if msg is not None and msg.get("type") == "message":
                self._on_message(msg["data"])
            now = time.monotonic()
            if self.count_usage and now >= next_flush:
                self._flush()
                next_flush = now + self.flush_interval
            if self.health_check_interval and now - last_ping >= self.health_check_interval:
                pubsub.ping()  # a dead connection surfaces as an error, not as silence
                last_ping = now

    def _load(self, client: redis.Redis) -> None:
        """Read every flag, the emergency state and the version in one transaction."""
        k = self.keys
        pipe = client.pipeline(transaction=True)
        pipe.hgetall(k.flags)
        pipe.get(k.emergency)
        pipe.get(k.version)
        pipe.get(k.revision)
        raw_flags, raw_emergency, version, revision = pipe.execute()
        self.version = int(version or 0)
        if revision is None:
            # Redis holds no flag data: restarted empty, or never published. Keep what we had.
            self.stale = self.ready.is_set()
            self.last_error = "Redis holds no flag data; waiting for the bastion to publish"
            self._notify(STALE if self.stale else ERROR, [])
            return
        flags: dict[str, Flag] = {}
        for name, doc in raw_flags.items():
            try:
                flags[name] = Flag.from_json(json.loads(doc))
            except (ValueError, KeyError, TypeError):
                log.warning("flag client: skipping unreadable flag %r", name)
        emergency = Emergency.from_json(json.loads(raw_emergency)) if raw_emergency else Emergency()
        changed = sorted(
            set(flags) ^ set(self._flags)
            | {n for n in flags if n in self._flags and flags[n] != self._flags[n]}
        )
        self._flags = flags
        self._set_emergency(emergency)
        self.stale = False
        self.last_error = ""
        self.last_sync = time.time()
        first = not self.ready.is_set()
        self.ready.set()
        self._notify(READY if first else CHANGED, changed)

    def _on_message(self, raw: str) -> None:
        msg = decode_message(raw)
        if msg is None:
            return
        v, op, name, data = msg["v"], msg["op"], str(msg.get("name") or ""), msg.get("data")
        if v <= self.version:
            return  # already in what we loaded
        if op == "snapshot" or v != self.version + 1 or not self.ready.is_set():
            self._load(self._client())
            return
        if op == "upsert" and isinstance(data, dict):
            flags = dict(self._flags)
            flags[name] = Flag.from_json(data)
            self._flags = flags
        elif op == "delete":
            flags = dict(self._flags)
            flags.pop(name, None)
            self._flags = flags
        elif op == "emergency":
            self._set_emergency(
                Emergency.from_json(data if isinstance(data, dict) else {"active": True})
            )
        elif op == "restore":
            self._set_emergency(Emergency())
        self.version = v
        self.stale = False
        self.last_sync = time.time()
        self._notify(CHANGED, [name] if name else sorted(self._flags))

    def _set_emergency(self, state: Emergency) -> None:
        self.emergency_state = state
        self._emergency = state.active

    def _lost(self, exc: Exception) -> None:
        was = self.connected
        self.connected = False
        self.stale = self.ready.is_set()
        self.last_error = f"{type(exc).__name__}: {exc}"
        if was:
            log.warning(
                "flag client: lost Redis at %s (%s); serving last known values",
                redact(self.url),
                self.last_error,
            )
            self._notify(STALE, [])

    def _flush(self) -> None:
        try:
            self.usage.flush(self._client())
        except (redis.RedisError, OSError) as exc:
            log.debug("flag client: usage flush postponed: %s", exc)

    def _notify(self, event: str, names: list[str]) -> None:
        for listener in list(self._listeners):
            try:
                listener(event, names)
            except Exception:
                log.exception("flag client listener failed")
