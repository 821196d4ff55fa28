"""Event feeds: the in-process bus, the journal tail (another process's run), Redis streams.

Real parts only: a real EventBus stamped by a real Journal, a second Journal connection on
the same file for the reader (as a watcher in another process has), a real redis-server.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend.events import Event, EventBus, Kind
from backend.feed import (
    BusFeed,
    Feed,
    Follow,
    JournalFeed,
    RedisFeed,
    RedisPublisher,
    journal_history,
    stream_key,
)
from backend.journal import Journal


def event(kind: Kind, dep: str | None = "d1", **data: object) -> Event:
    return Event(kind=kind.value, deployment_id=dep, data=dict(data))


def started(dep: str, **data: object) -> Event:
    return event(Kind.DEPLOYMENT_STARTED, dep, hosts=["a"], **data)


async def collect(feed: Feed, count: int, timeout: float = 5.0) -> list[Event]:
    """The first ``count`` events of a feed."""
    out: list[Event] = []

    async def run() -> None:
        async for batch in feed.batches():
            out.extend(batch)
            if len(out) >= count:
                return

    await asyncio.wait_for(run(), timeout)
    return out


async def _aiter(feed: Feed) -> AsyncIterator[Event]:
    async for e in feed:
        yield e


def test_follow_pins_or_switches() -> None:
    pinned = Follow("d1")
    assert pinned.accept(event(Kind.PHASE_STARTED, "d1"))
    assert pinned.accept(event(Kind.FLAG_CHANGED, None))
    assert not pinned.accept(started("d2"))
    latest = Follow()
    assert latest.accept(event(Kind.PHASE_STARTED, "d1"))  # adopts the first it sees
    assert not latest.accept(event(Kind.PHASE_STARTED, "d0"))
    assert latest.accept(started("d2")) and latest.current == "d2"
    assert not latest.accept(started("dry-d3", dry_run=True))  # a plan is not a deployment
    assert latest.current == "d2"


async def test_bus_feed_yields_history_then_live_without_duplicates(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    bus = EventBus()
    bus.set_stamper(journal.record)
    first = bus.emit(started("d1"))
    second = bus.emit(event(Kind.PHASE_STARTED, phase="backup"))
    feed = BusFeed(bus, history=lambda: journal.events("d1"))
    task = asyncio.create_task(collect(feed, 3))
    await asyncio.wait_for(feed.caught_up.wait(), 5)
    third = bus.emit(event(Kind.PHASE_FINISHED, phase="backup"))
    got = await task
    assert [e.seq for e in got] == [first.seq, second.seq, third.seq]
    await feed.aclose()
    assert feed.queue not in bus._queues


async def test_bus_feed_iterates_single_events() -> None:
    bus = EventBus()
    feed = BusFeed(bus)
    bus.emit(event(Kind.INCIDENT, severity="info", message="a"))
    bus.emit(event(Kind.INCIDENT, severity="info", message="b"))
    it = _aiter(feed)
    assert (await anext(it)).data["message"] == "a"
    assert (await anext(it)).data["message"] == "b"
    await feed.aclose()


async def test_journal_feed_follows_a_writer_on_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    writer = Journal(path)
    writer.record(started("old"))
    writer.record(event(Kind.PHASE_STARTED, "old", phase="backup"))
    writer.record(started("d1"))
    writer.record(event(Kind.PHASE_STARTED, "d1", phase="validate-pre"))
    reader = Journal(path)
    feed = JournalFeed(reader, poll_interval=0.02)
    out: list[Event] = []

    async def consume() -> None:
        async for batch in feed.batches():
            out.extend(batch)

    task = asyncio.create_task(consume())
    await asyncio.wait_for(feed.caught_up.wait(), 5)
    assert [e.deployment_id for e in out] == ["d1", "d1"]  # the latest, from its start
    writer.record(event(Kind.FLAG_CHANGED, None, flag="x"))
    writer.record(event(Kind.PHASE_STARTED, "old", phase="late"))  # another deployment: not ours
    writer.record(started("d2"))  # a new deployment: followed
    deadline = time.monotonic() + 5
    while len(out) < 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    task.cancel()
    assert [(e.kind, e.deployment_id) for e in out[2:]] == [
        ("flag.changed", None),
        ("deployment.started", "d2"),
    ]


async def test_journal_feed_pinned_replays_from_the_deployment_start(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    journal.record(started("d1"))
    journal.record(started("d2"))
    journal.record(event(Kind.PHASE_STARTED, "d1", phase="backup"))
    feed = JournalFeed(journal, "d1", poll_interval=0.02)
    got = await collect(feed, 2)
    assert [(e.kind, e.deployment_id) for e in got] == [
        ("deployment.started", "d1"),
        ("phase.started", "d1"),
    ]


async def test_journal_feed_without_history_starts_at_the_end(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    journal.record(started("d1"))
    feed = JournalFeed(journal, history=False, poll_interval=0.02)
    task = asyncio.create_task(collect(feed, 1))
    await asyncio.wait_for(feed.caught_up.wait(), 5)
    journal.record(event(Kind.PHASE_STARTED, "d1", phase="backup"))
    assert [e.kind for e in await task] == ["phase.started"]


def test_journal_history_of_the_latest_deployment(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    assert journal_history(journal) == []
    journal.record(started("d1"))
    journal.record(event(Kind.INCIDENT, None, severity="info", message="global"))
    journal.record(started("d2"))
    journal.record(event(Kind.PHASE_STARTED, "d1", phase="x"))
    assert [e.deployment_id for e in journal_history(journal)] == ["d2"]
    assert [e.deployment_id for e in journal_history(journal, "d1")] == ["d1", None, "d1"]


def test_feed_module_imports_no_ui() -> None:
    """backend/ stays headless: importing the feeds pulls in no textual nor rich (click comes
    in through sqlite-utils' own CLI, which the journal imports)."""
    code = (
        "import sys, backend.feed; "
        "bad = [m for m in ('textual', 'rich') if m in sys.modules]; "
        "print(', '.join(bad)); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_redis_publisher_and_feed_carry_events_across(fresh_redis) -> None:  # type: ignore[no-untyped-def]
    bus = EventBus()
    stream = stream_key("test")
    publisher = RedisPublisher(bus, fresh_redis.url, stream=stream, maxlen=50).start()
    bus.emit(started("d1"))
    bus.emit(event(Kind.PHASE_STARTED, "d1", phase="backup"))
    await publisher.flush()
    feed = RedisFeed(fresh_redis.url, stream=stream, block_ms=100)
    out: list[Event] = []

    async def consume() -> None:
        async for batch in feed.batches():
            out.extend(batch)

    task = asyncio.create_task(consume())
    await asyncio.wait_for(feed.caught_up.wait(), 5)
    assert [e.kind for e in out] == ["deployment.started", "phase.started"]
    bus.emit(event(Kind.PHASE_FINISHED, "d1", phase="backup", status="succeeded"))
    deadline = time.monotonic() + 5
    while len(out) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert out[-1].data["status"] == "succeeded"
    task.cancel()
    await feed.aclose()
    for i in range(300):
        bus.emit(event(Kind.STEP_OUTPUT, "d1", line=str(i)))
    await publisher.flush()
    await publisher.stop()
    import redis

    length = redis.Redis.from_url(fresh_redis.url).xlen(stream)
    assert length < 303  # trimmed to about MAXLEN (approximate trimming)
    assert publisher.published == 303


async def test_redis_publisher_never_blocks_the_bus_when_redis_is_down() -> None:
    bus = EventBus()
    publisher = RedisPublisher(bus, "redis://127.0.0.1:1/0", retry_seconds=0.05).start()
    started_at = time.monotonic()
    for i in range(100):
        bus.emit(event(Kind.STEP_OUTPUT, "d1", line=str(i)))
    assert time.monotonic() - started_at < 0.5  # emit is never waiting on Redis
    deadline = time.monotonic() + 5
    while publisher.dropped == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert publisher.dropped > 0 and publisher.published == 0
    await publisher.stop()


@pytest.mark.parametrize("history", [True, False])
async def test_redis_feed_on_an_empty_stream_is_caught_up(fresh_redis, history: bool) -> None:  # type: ignore[no-untyped-def]
    feed = RedisFeed(fresh_redis.url, stream=stream_key("empty"), block_ms=50, history=history)
    task = asyncio.create_task(collect(feed, 1, timeout=10))
    await asyncio.wait_for(feed.caught_up.wait(), 5)
    task.cancel()
    await feed.aclose()
