"""Event feeds: one async source of events for every consumer that is not the engine itself.

The control room, ``watch`` and any other subscriber read events the same way, whatever
carries them:

- :class:`BusFeed`: the in-process :class:`~backend.events.EventBus` (the room that runs
  the engine); optional history first, so a reopened room shows the last deployment.
- :class:`JournalFeed`: the SQLite journal tailed by sequence number, for a watcher in
  another process on the same machine (the journal is in WAL mode: reads never block the
  writer).
- :class:`RedisFeed`: a Redis stream, for a watcher on another machine; fed by
  :class:`RedisPublisher`, a bus subscriber that XADDs every event with a bounded MAXLEN.

Feeds yield *batches* (lists of events, in order) because every consumer wants to apply
many events at once (one repaint per batch, not per event); ``async for event in feed``
iterates single events. ``caught_up`` is set once the history has been delivered and the
feed is live, so a consumer (or a test) knows when the replay is over.

Headless: no textual, rich or click here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from .events import Event, EventBus, Kind
from .journal import Journal

log = logging.getLogger(__name__)

#: events that make a follower switch to another deployment when it follows "the latest"
_SWITCHES = (Kind.DEPLOYMENT_STARTED.value, Kind.ROLLBACK_STARTED.value)

DEFAULT_STREAM_MAXLEN = 10_000


def stream_key(prefix: str = "portal-ops") -> str:
    """The Redis stream every portal-ops process publishes its events to."""
    return f"{prefix}:events"


class Follow:
    """Which events belong to the deployment being followed.

    Pinned to one id: that deployment's events plus events that belong to no deployment
    (flag changes, monitor samples, incidents). Unpinned: the latest deployment; a new
    ``deployment.started`` (or a ``rollback.started`` of another deployment) switches to it.
    Dry-runs (the plan shown before a deploy) never switch it.
    """

    def __init__(self, deployment_id: str | None = None) -> None:
        self.pinned = deployment_id is not None
        self.current = deployment_id

    def accept(self, event: Event) -> bool:
        dep = event.deployment_id
        if dep is None or dep == self.current:
            return True
        if event.data.get("dry_run"):  # a plan built before a deploy is not a deployment
            return False
        if self.pinned:
            return False
        if self.current is None or str(event.kind) in _SWITCHES:
            self.current = dep
            return True
        return False


class Feed:
    """An ordered, async source of event batches."""

    def __init__(self) -> None:
        self.caught_up = asyncio.Event()

    def batches(self) -> AsyncIterator[list[Event]]:
        """Yield lists of events in order, history first; runs until cancelled or closed."""
        raise NotImplementedError

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        async for batch in self.batches():
            for event in batch:
                yield event

    async def aclose(self) -> None:
        """Release what the feed holds (queues, connections); safe to call twice."""


class BusFeed(Feed):
    """Events from an in-process bus, after an optional history.

    The queue is taken at construction, before anything else can happen, so no event
    emitted after that is missed; events already in the history (same ``seq``) are
    skipped. ``history`` is a list, or a callable run in a thread (a journal read).
    """

    def __init__(
        self,
        bus: EventBus,
        history: Iterable[Event] | Callable[[], Iterable[Event]] = (),
    ) -> None:
        super().__init__()
        self.bus = bus
        self.queue: asyncio.Queue[Event] = bus.queue()
        self.history = history
        self._closed = False

    async def batches(self) -> AsyncIterator[list[Event]]:
        source = self.history
        self.history = ()
        history = list(await asyncio.to_thread(source)) if callable(source) else list(source)
        last = max((e.seq for e in history), default=0)
        # a journal batching its writes hands events on before they have a seq (0): those
        # already in the history are known by what they are
        seen = {_identity(e) for e in history}
        if history:
            yield history
        self.caught_up.set()
        while not self._closed:
            first = await self.queue.get()
            batch = [first]
            while not self.queue.empty():
                batch.append(self.queue.get_nowait())
            fresh = [
                e
                for e in batch
                if not (e.seq and e.seq <= last) and not (not e.seq and _identity(e) in seen)
            ]
            if fresh:
                yield fresh

    async def aclose(self) -> None:
        self._closed = True
        self.bus.unqueue(self.queue)


class JournalFeed(Feed):
    """Tail the journal by sequence number: the watcher's view of another process's run.

    With ``deployment_id`` it replays that deployment from its first event, then follows
    it; without, it follows the running deployment (else the latest), and switches when
    a new one starts. SQLite reads run in a worker thread so the event loop never waits.
    ``history=False`` starts at the journal's end (only what happens from now on).
    """

    def __init__(
        self,
        journal: Journal,
        deployment_id: str | None = None,
        *,
        poll_interval: float = 0.25,
        batch_limit: int = 500,
        history: bool = True,
    ) -> None:
        super().__init__()
        self.journal = journal
        self.follow = Follow(deployment_id)
        self.poll_interval = poll_interval
        self.batch_limit = batch_limit
        self.history = history
        self.cursor = 0

    async def _start_seq(self) -> int:
        """The seq to read after: just before the followed deployment's first event."""
        if not self.history:
            return await asyncio.to_thread(self.journal.last_seq)
        target = self.follow.current
        if target is None:
            running = await asyncio.to_thread(self.journal.unfinished)
            latest = (
                running[-1]
                if running
                else await asyncio.to_thread(self.journal.latest_deployment, None, True)
            )
            if latest is None:
                return await asyncio.to_thread(self.journal.last_seq)
            target = latest["id"]
        first = await asyncio.to_thread(self.journal.events, target, 0, 1)
        if not first:
            return await asyncio.to_thread(self.journal.last_seq)
        return first[0].seq - 1

    async def batches(self) -> AsyncIterator[list[Event]]:
        self.cursor = await self._start_seq()
        while True:
            rows = await asyncio.to_thread(self.journal.events, None, self.cursor, self.batch_limit)
            if rows:
                self.cursor = rows[-1].seq
                batch = [e for e in rows if self.follow.accept(e)]
                if batch:
                    yield batch
            if len(rows) < self.batch_limit:
                self.caught_up.set()
                await asyncio.sleep(self.poll_interval)


def _identity(event: Event) -> tuple[Any, ...]:
    return (str(event.kind), event.ts, event.deployment_id, event.run, event.phase, event.host)


def _encode(event: Event) -> dict[str, str]:
    return {"event": json.dumps(event.to_dict(), default=str)}


def _decode(fields: dict[Any, Any]) -> Event | None:
    raw = fields.get(b"event", fields.get("event"))
    if raw is None:
        return None
    try:
        return Event.from_dict(json.loads(raw))
    except (TypeError, ValueError):
        log.warning("unreadable event in the Redis stream: %.80r", raw)
        return None


class RedisFeed(Feed):
    """Follow a deployment through the Redis stream a :class:`RedisPublisher` writes.

    Replays what the (bounded) stream still holds, then blocks on XREAD for new entries.
    A lost connection is retried every ``retry_seconds``; the watcher says so in its log.
    """

    def __init__(
        self,
        url: str,
        deployment_id: str | None = None,
        *,
        stream: str = stream_key(),
        block_ms: int = 1000,
        count: int = 500,
        history: bool = True,
        retry_seconds: float = 1.0,
    ) -> None:
        super().__init__()
        self.url = url
        self.stream = stream
        self.follow = Follow(deployment_id)
        self.block_ms = block_ms
        self.count = count
        self.history = history
        self.retry_seconds = retry_seconds
        self._client: Any = None

    async def batches(self) -> AsyncIterator[list[Event]]:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        self._client = aioredis.Redis.from_url(self.url)
        last_id = "0-0" if self.history else "$"
        while True:
            try:
                if last_id == "$":  # resolve "$" once so a reconnect never skips entries
                    info = await self._client.xinfo_stream(self.stream)
                    last_id = _id_str(info.get("last-generated-id", b"0-0"))
                block = None if not self.caught_up.is_set() else self.block_ms
                reply = await self._client.xread(
                    {self.stream: last_id}, count=self.count, block=block
                )
            except RedisError as exc:
                if "no such key" in str(exc).lower():
                    last_id = "0-0"
                else:
                    log.warning("redis feed %s: %s; retrying", self.url, exc)
                    await asyncio.sleep(self.retry_seconds)
                    continue
                reply = []
            entries = reply[0][1] if reply else []
            if entries:
                last_id = _id_str(entries[-1][0])
                events = [e for _, fields in entries if (e := _decode(fields)) is not None]
                batch = [e for e in events if self.follow.accept(e)]
                if batch:
                    yield batch
            if len(entries) < self.count and not self.caught_up.is_set():
                self.caught_up.set()

    async def aclose(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None


def _id_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisPublisher:
    """Copy every event of a bus into a Redis stream, for watchers on other machines.

    Runs as a task over a bus queue (never inside ``emit``), so a slow or absent Redis
    never slows the engine; entries are pipelined and the stream is trimmed to about
    ``maxlen`` entries (``MAXLEN ~``). Redis being down loses stream entries, never
    journal entries: the journal stays the record.
    """

    def __init__(
        self,
        bus: EventBus,
        url: str,
        *,
        stream: str = stream_key(),
        maxlen: int = DEFAULT_STREAM_MAXLEN,
        retry_seconds: float = 2.0,
    ) -> None:
        self.bus = bus
        self.url = url
        self.stream = stream
        self.maxlen = maxlen
        self.retry_seconds = retry_seconds
        self.published = 0
        self.dropped = 0
        self._inflight = 0
        self._queue: asyncio.Queue[Event] | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: Any = None

    def start(self) -> RedisPublisher:
        """Subscribe now (nothing emitted after this is missed) and start publishing."""
        if self._task is None:
            self._queue = self.bus.queue()
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _run(self) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        assert self._queue is not None
        self._client = aioredis.Redis.from_url(self.url)
        down_since_warned = False
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._inflight = len(batch)
            try:
                await self._publish(batch)
                down_since_warned = False
            except (RedisError, OSError) as exc:
                self.dropped += len(batch)
                if not down_since_warned:
                    log.warning("redis publisher %s: %s; events stay in the journal", self.url, exc)
                    down_since_warned = True
                await asyncio.sleep(self.retry_seconds)
            finally:
                self._inflight = 0

    async def _publish(self, batch: list[Event]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for event in batch:
            pipe.xadd(self.stream, _encode(event), maxlen=self.maxlen, approximate=True)
        await pipe.execute()
        self.published += len(batch)

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait (bounded) until the queue is drained: call before a short-lived process exits."""
        if self._queue is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (not self._queue.empty() or self._inflight) and loop.time() < deadline:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Flush briefly, then stop and disconnect; safe to call twice."""
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._queue is not None:
            self.bus.unqueue(self._queue)
            self._queue = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None


def journal_history(journal: Journal, deployment_id: str | None = None) -> list[Event]:
    """The events of one deployment (default: the running, else the latest) to replay.

    Used by a room that runs the engine itself, to show the last deployment on opening.
    Includes the events of no deployment (flags, monitor) since that deployment began.
    """
    follow = Follow(deployment_id)
    target = deployment_id
    if target is None:
        running = journal.unfinished()
        latest = running[-1] if running else journal.latest_deployment(real_only=False)
        if latest is None:
            return []
        target = latest["id"]
        follow = Follow(target)
    first = journal.events(target, 0, 1)
    if not first:
        return []
    return [e for e in journal.events(None, first[0].seq - 1) if follow.accept(e)]
