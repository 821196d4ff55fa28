"""The control room driving the real engine in the demo sandbox, from the keyboard only.

A sandbox of three local hosts behind a load balancer is built and version 1 deployed
(``backend.demo.run.bring_up``); then the room deploys version 2 (d, read the dry-run
plan, y) and rolls it back (R, type the id, a reason, enter), while a second, read-only
room follows the same journal. Assertions are on the journal and the hosts, not only on
the screen.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from textual import events

from backend.demo.run import DemoSession, bring_up
from backend.feed import JournalFeed
from backend.journal import Journal
from tests.tui.conftest import until
from tui.app import OperatorRoom, WatchRoom
from tui.screens.confirm import ConfirmDeploy, ConfirmQuit, ConfirmRollback
from tui.screens.room import RoomScreen

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[DemoSession]:
    session = await bring_up(tmp_path / "demo")
    try:
        yield session
    finally:
        session.close()
        session.sandbox.stop()


def journal_path(session: DemoSession) -> Path:
    return Path(session.config.state.dir or session.sandbox.state_dir) / "journal.db"


async def test_deploy_then_rollback_from_the_keyboard(demo: DemoSession) -> None:
    engine = demo.engine()
    journal = engine.journal
    v1 = journal.latest_deployment()
    assert v1 is not None and v1["outcome"] == "succeeded"
    live_v1 = {h.name: demo.sandbox.current_release(h.name) for h in demo.sandbox.hosts}

    room = OperatorRoom(demo.config, engine=engine)
    watcher_journal = Journal(journal_path(demo))
    watcher = WatchRoom(
        demo.config,
        journal=watcher_journal,
        feed=JournalFeed(watcher_journal, poll_interval=0.05),
        source="journal",
    )
    async with room.run_test(size=(120, 36)) as pilot, watcher.run_test(size=(100, 30)):
        await room.wait_caught_up()
        await watcher.wait_caught_up()

        # -- deploy: d shows the dry-run plan; y runs it ------------------------------
        await pilot.press("d")
        await until(lambda: isinstance(room.screen, ConfirmDeploy), timeout=60)
        plan = room.screen.plan_text  # type: ignore[attr-defined]
        assert "[4/9] Code deployment" in plan and "revision v2" in plan
        await pilot.press("y")
        await until(lambda: room.engine_worker is not None)
        assert room.engine_worker is not None
        await until(lambda: room.engine_worker is not None and room.engine_worker.is_finished, 120)
        row = journal.latest_deployment()
        assert row is not None and row["id"] != v1["id"]
        assert (row["revision"], row["status"], row["outcome"]) == ("v2", "finished", "succeeded")
        deployment_id = row["id"]
        await until(lambda: room.state.status == "succeeded")
        assert all(p.status in ("done", "skipped") for p in room.state.phases)
        # the read-only room saw the same deployment through the journal
        await until(lambda: watcher.state.deployment is not None
                    and watcher.state.deployment.id == deployment_id
                    and watcher.state.status == "succeeded", 30)  # fmt: skip
        live_v2 = {h.name: demo.sandbox.current_release(h.name) for h in demo.sandbox.hosts}
        assert live_v2 != live_v1

        # -- rollback: R, the id typed in full, a reason, enter -----------------------
        await pilot.press("R")
        await until(lambda: isinstance(room.screen, ConfirmRollback))
        await pilot.press(*deployment_id[:-1])
        assert not room.screen.armed  # type: ignore[attr-defined]
        await pilot.press(deployment_id[-1], "enter")  # enter moves to the reason
        await pilot.press(*"p95 above 500 ms", "enter")
        await until(lambda: isinstance(room.screen, RoomScreen))
        await until(
            lambda: room.engine_worker is not None and room.engine_worker.name == "rollback"
        )
        await until(lambda: room.engine_worker is not None and room.engine_worker.is_finished, 120)
        row = journal.get_deployment(deployment_id)  # the journal first: it says what happened
        assert row is not None and row["outcome"] == "rolled_back", row
        await until(
            lambda: room.state.status == "rolled-back",
            30,
            seen=lambda: (room.state.status, [(p.name, p.status) for p in room.state.timeline]),
        )
        finished = [e for e in journal.events(deployment_id) if e.kind == "rollback.finished"]
        assert finished and finished[-1].data["outcome"] == "succeeded"
        started = [e for e in journal.events(deployment_id) if e.kind == "rollback.started"]
        assert started[-1].data["reason"] == "p95 above 500 ms"
        assert started[-1].data["trigger"]["kind"] == "manual"
        assert [p.status for p in room.state.timeline].count("failed") == 0
        live_after = {h.name: demo.sandbox.current_release(h.name) for h in demo.sandbox.hosts}
        assert live_after == live_v1
        await until(lambda: watcher.state.status == "rolled-back", 30)


async def test_quit_while_deploying_asks_then_cancels_and_keeps_the_lock(demo: DemoSession) -> None:
    engine = demo.engine()
    room = OperatorRoom(demo.config, engine=engine, load_flags=False)
    seen: dict[str, Any] = {}
    async with room.run_test(size=(120, 36)) as pilot:
        await room.wait_caught_up()
        await pilot.press("d")
        await until(lambda: isinstance(room.screen, ConfirmDeploy), timeout=60)
        await pilot.press("y")
        await until(lambda: room.state.status == "running" and room.state.current_phase is not None)
        await pilot.press("q")
        await until(lambda: isinstance(room.screen, ConfirmQuit))
        seen["text"] = str(room.screen.query_one(".explain").render())
        await pilot.press("y")
        await until(lambda: room.return_code is not None, 60)
    assert room.return_code == 1
    assert "cancels" in seen["text"] and "portal-ops resume" in seen["text"]
    row = engine.journal.latest_deployment()
    # interrupted, not finished: resume continues it, rollback undoes it
    assert row is not None and row["outcome"] == "interrupted", row
    messages = [e.data.get("message", "") for e in engine.journal.events(row["id"])]
    assert any("the lock is kept" in m for m in messages)


def burst(app: Any, *keys: str) -> None:
    """Keys as a terminal delivers a fast typist's (or a paste): all queued at once, none
    waiting for the room to look idle first (Pilot's press does, up to 1 s a key while a
    deployment runs in this process)."""
    import unicodedata

    from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key

    for key in keys:
        if len(key) == 1 and not key.isalnum():
            key = _character_to_key(key)
        try:
            char: str | None = unicodedata.lookup(
                _get_unicode_name_from_key(REPLACED_KEYS.get(key, key))
            )
        except KeyError:
            char = key if len(key) == 1 else None
        app._driver.send_message(events.Key(key, char))


def serving(session: DemoSession) -> dict[str, str | None]:
    """The release each host serves, read on the host (its `current` link)."""
    return {h.name: session.sandbox.current_release(h.name) for h in session.sandbox.hosts}


@pytest.mark.parametrize("when", ["at-once", "switched"])
async def test_rollback_key_during_a_deployment_cancels_it_then_rolls_back(
    demo: DemoSession, when: str
) -> None:
    """R while version 2 deploys, typed right after `y` (the screen does not show version 2
    yet: the dialog named version 1 and the engine refused its rollback after cancelling
    version 2, so no rollback ever showed) or once a host serves version 2: the deployment
    is cancelled, then rolled back on the hosts it changed, and the room shows the
    rollback's phases and its outcome."""
    engine = demo.engine()
    journal = engine.journal
    v1 = journal.latest_deployment()
    assert v1 is not None
    live_v1 = serving(demo)
    room = OperatorRoom(demo.config, engine=engine, load_flags=False)
    async with room.run_test(size=(120, 36)) as pilot:
        await room.wait_caught_up()
        await pilot.press("d")
        await until(lambda: isinstance(room.screen, ConfirmDeploy), timeout=60)
        if when == "at-once":  # y then R typed at once, as a terminal delivers them
            burst(room, "y", "R")
        else:
            await pilot.press("y")
            # a host serves version 2 (the run is switching them, or further on)
            await until(lambda: serving(demo) != live_v1, 60, seen=lambda: serving(demo))
            await pilot.press("R")
        await until(lambda: isinstance(room.screen, ConfirmRollback))
        # the dialog names the deployment running in this room, not the one before it
        deployment_id = room.screen.deployment_id  # type: ignore[attr-defined]
        assert deployment_id != v1["id"]
        burst(room, *deployment_id, "enter", *"errors during the bake", "enter")
        await until(lambda: isinstance(room.screen, RoomScreen))
        # the room shows the rollback running: its phases, not the deployment's
        await until(
            lambda: room.state.timeline and room.state.timeline[0].name == "rb-declare",
            20,
            seen=lambda: (room.state.status, [(p.name, p.status) for p in room.state.timeline]),
        )
        await until(
            lambda: room.state.status == "rolled-back",
            30,
            seen=lambda: (room.state.status, [(p.name, p.status) for p in room.state.timeline]),
        )
    row = journal.get_deployment(deployment_id)
    assert row is not None and row["outcome"] == "rolled_back", row
    finished = [e for e in journal.events(deployment_id) if e.kind == "rollback.finished"]
    assert finished and finished[-1].data["outcome"] == "succeeded"
    assert serving(demo) == live_v1
