"""Watch mode: a second room follows what another process writes to the journal, and can
change nothing: dangerous actions are absent (no key, no footer entry, no palette hit) and
refused if reached anyway."""

from __future__ import annotations

from pathlib import Path

from backend.feed import JournalFeed
from backend.flags.service import FlagService
from backend.journal import Journal
from backend.schema import dump
from tests.tui import recorded
from tests.tui.conftest import until
from tui.actions import ACTIONS, DANGEROUS_NAMES
from tui.app import ActionCommands, WatchRoom
from tui.screens.room import RoomScreen
from tui.settle import settled


def watcher(journal: Journal, **kwargs: object) -> WatchRoom:
    events_now = recorded.T0 + 300
    return WatchRoom(
        recorded.config(),
        journal=journal,
        feed=JournalFeed(journal, poll_interval=0.05),
        clock=lambda: events_now,
        source="journal",
        load_flags=False,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_watch_follows_a_deployment_written_by_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    writer = Journal(path)  # the deploying process's connection
    events = recorded.deployment("done")
    recorded.write_journal(writer, events[:6])
    app = watcher(Journal(path))  # the watcher's own connection, as in another process
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        assert app.state.deployment is not None
        assert app.state.deployment.id == recorded.DEPLOY_ID
        assert app.state.status == "running"
        shown = app.room.log_widget.total
        for start in range(6, len(events), 40):  # the writer goes on, in bursts
            recorded.write_journal(writer, events[start : start + 40])
            await pilot.pause(0.02)
        await until(lambda: app.state.status == "succeeded")
        await until(lambda: app.room.drawn is not None and app.room.drawn.status == "succeeded")
        assert all(p.status == "done" for p in app.state.phases)
        assert app.state.last_seq == writer.last_seq()
        assert app.room.log_widget.total > shown
        header = app.room.query_one("#header").render()
        assert "SUCCEEDED" in str(header) and "READ-ONLY" in str(header)


async def test_watch_switches_to_the_next_deployment(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    writer = Journal(path)
    recorded.write_journal(writer, recorded.deployment("done"))
    app = watcher(Journal(path))
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        assert app.state.status == "succeeded"
        nxt = [e for e in recorded.deployment("mid")]
        from dataclasses import replace

        recorded.write_journal(
            writer, [replace(e, deployment_id="bp-next") if e.deployment_id else e for e in nxt]
        )
        await until(
            lambda: app.state.deployment is not None and app.state.deployment.id == "bp-next"
        )
        await until(lambda: app.state.status == "running")


async def test_every_dangerous_key_in_watch_mode_leaves_the_journal_unchanged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.db"
    journal = Journal(path)
    recorded.write_journal(journal, recorded.deployment("mid"))
    flags = FlagService(path)
    for name in recorded.FLAGS:
        flags.create(name, description="release flag")
    flags.enable(recorded.FLAGS[0], 10)
    before_seq = journal.last_seq()
    before_deployments = journal.list_deployments()
    before_flags = [f.to_json() for f in flags.flags()]
    before_audit = len(flags.history(limit=1000))

    app = watcher(Journal(path), flag_service=flags)
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        await pilot.press("4")  # the flag table focused, a flag selected: the worst case
        for action in ACTIONS:
            if not action.dangerous:
                continue
            for key in action.keys.split(","):
                await pilot.press(key, key)  # twice: the "press twice" guard too
                await pilot.press("y", "enter")  # and anything a dialog would accept
                assert isinstance(app.screen, RoomScreen), f"{key} opened {app.screen}"
        for name in DANGEROUS_NAMES:  # the second guard: refused even when reached directly
            assert app.check_action(name, ()) is False
            assert await app.run_action(name) is False
        assert isinstance(app.screen, RoomScreen)
        bound = {
            b.action.split("(")[0]
            for group in app._bindings.key_to_bindings.values()
            for b in group
        }
        assert not bound & DANGEROUS_NAMES
        footer = {b.binding.action.split("(")[0] for b in app.active_bindings.values()}
        assert not footer & DANGEROUS_NAMES
        provider = ActionCommands(app.screen)
        titles = [str(hit.text) async for hit in provider.search("roll")]
        titles += [str(hit.text) async for hit in provider.search("deploy")]
        titles += [str(hit.text) async for hit in provider.search("flag")]
        assert titles and not any("Rollback" in t or "Deploy" in t or "Flag +" in t for t in titles)
        await settled(pilot)
    assert journal.last_seq() == before_seq
    assert journal.list_deployments() == before_deployments
    assert [f.to_json() for f in flags.flags()] == before_flags
    assert len(flags.history(limit=1000)) == before_audit


async def test_watch_through_redis_from_another_machine(fresh_redis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The operator's room publishes to the Redis stream; a watcher elsewhere reads it."""
    from backend.events import EventBus
    from backend.feed import RedisFeed, RedisPublisher, stream_key

    bus = EventBus()
    bus.set_stamper(Journal(tmp_path / "operator.db").record)  # the operator's own journal
    publisher = RedisPublisher(bus, fresh_redis.url, stream=stream_key("t")).start()
    events = recorded.deployment("done")
    for event in events[:20]:
        bus.emit(event)
    await publisher.flush()
    app = WatchRoom(
        recorded.config(),
        journal=Journal(tmp_path / "watcher.db"),  # empty: this machine never saw the run
        feed=RedisFeed(fresh_redis.url, stream=stream_key("t"), block_ms=100),
        source="redis",
        load_flags=False,
        clock=lambda: recorded.T0 + 300,
    )
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        assert app.state.deployment is not None and app.state.status == "running"
        for event in events[20:]:
            bus.emit(event)
        await publisher.flush()
        await until(lambda: app.state.status == "succeeded")
        assert "(redis)" in str(app.room.query_one("#header").render())
    await publisher.stop()


def test_watch_source_choice(fresh_redis, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from backend.config import parse_config
    from backend.feed import RedisFeed
    from tui.app import watch_feed

    journal = Journal(tmp_path / "j.db")
    plain = recorded.config()
    raw = dump(plain)
    raw["redis"] = {"url": fresh_redis.url, "prefix": "t"}
    with_redis = parse_config(raw)
    assert watch_feed(plain, journal, None)[1] == "journal"  # no Redis: the journal
    assert watch_feed(with_redis, journal, None)[1] == "redis"  # nothing running here
    recorded.write_journal(journal, recorded.deployment("mid"))
    assert watch_feed(with_redis, journal, None)[1] == "journal"  # running here: complete
    assert watch_feed(with_redis, journal, recorded.DEPLOY_ID)[1] == "journal"
    feed, name = watch_feed(with_redis, journal, "bp-elsewhere")
    assert name == "redis" and isinstance(feed, RedisFeed)
    import pytest

    with pytest.raises(ValueError, match="unknown deployment id"):
        watch_feed(plain, journal, "bp-elsewhere")
    with pytest.raises(ValueError, match="needs \\[redis\\] url"):
        watch_feed(plain, journal, None, source="redis")
