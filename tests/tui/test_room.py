"""Pilot tests of the room's own keys: log filter and severities, focus and zoom, themes,
help and palette from the one registry, flag changes from the keyboard (a real flag service
on a real journal), and the log keeping up with thousands of lines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backend.engine import Engine
from backend.events import Event, Kind
from backend.flags.service import FlagService
from backend.journal import Journal
from tests.tui import recorded
from tests.tui.conftest import until
from tui.actions import ACTIONS, available, bindings, key_label
from tui.app import ActionCommands, OperatorRoom, RoomApp
from tui.screens.confirm import ReasonPrompt
from tui.screens.flags import FlagsScreen
from tui.screens.help import HelpScreen, KeyTable
from tui.settle import settled
from tui.state import LogLine
from tui.widgets.incident_log import IncidentLog

Room = Callable[..., RoomApp]


def test_registry_feeds_bindings_and_watch_mode_drops_the_dangerous() -> None:
    ids = [a.id for a in ACTIONS]
    assert len(ids) == len(set(ids))
    keys = [k for a in ACTIONS for k in a.keys.split(",")]
    assert len(keys) == len(set(keys)), "one key, one action"
    assert all(a.guard for a in ACTIONS if a.dangerous), "every dangerous action says how it asks"
    operator = bindings(available(watch=False))
    watch = bindings(available(watch=True))
    assert {b.id for b in operator} - {b.id for b in watch} == {
        f"portal-ops.{a.id}" for a in ACTIONS if a.dangerous
    }
    assert key_label(next(a for a in ACTIONS if a.id == "help")) == "? f1"


async def test_log_filter_and_severity(room: Room) -> None:
    app = room("rollback")
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        log = app.room.log_widget
        total = log.total
        await pilot.press("slash", *"web-2")
        assert log.filter_text == "web-2"
        assert 0 < log.shown < total
        assert all("web-2" in line for line in log.plain_lines())
        await pilot.press("enter")
        assert log.has_focus and log.filter_text == "web-2"
        await pilot.press("slash", "escape")
        assert log.filter_text == "" and log.shown == total
        await pilot.press("s", "s")  # all -> INFO -> WARN
        assert log.min_severity == "warning"
        assert {line.split()[1] for line in log.plain_lines()} <= {"WARN", "ERROR", "CRIT"}
        assert "≥WARNING" in str(log.border_subtitle)
        await pilot.press("s", "s")
        assert log.min_severity == "debug" and log.shown == total


async def test_focus_and_zoom_panes(room: Room) -> None:
    app = room("mid")
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        for key, pane in (("1", "timeline"), ("2", "hosts"), ("3", "graphs"), ("4", "flags")):
            await pilot.press(key)
            assert app.screen.focused is not None and app.screen.focused.id == pane
        await pilot.press("z")
        assert app.screen.maximized is not None and app.screen.maximized.id == "flags"
        await pilot.press("escape")
        assert app.screen.maximized is None
        await pilot.press("5", "z")
        assert app.screen.maximized is not None and app.screen.maximized.id == "log"
        await pilot.press("z")
        assert app.screen.maximized is None


async def test_hidden_pane_at_80x24_opens_zoomed(room: Room) -> None:
    app = room("done")
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        flags = app.room.query_one("#flags")
        assert not flags.display or flags.region.height == 0
        await pilot.press("4")
        assert app.screen.maximized is flags
        await settled(pilot)
        assert flags.region.height > 3


async def test_theme_key_cycles_and_restyles(room: Room) -> None:
    app = room("mid")
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        assert app.theme == "portal-dark"
        seen = []
        for _ in range(5):
            await pilot.press("t")
            seen.append(app.theme)
        assert seen == [
            "portal-light",
            "portal-high-contrast",
            "ansi-dark",
            "ansi-light",
            "portal-dark",
        ]


async def test_theme_key_finds_its_rules_parsed_ahead(
    room: Room, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each theme's rules are parsed while the room is idle, before `t` goes to it: the key
    itself never parses the stylesheet (it was ~15 % of its cost, on every first round)."""
    from textual.css.stylesheet import Stylesheet

    app = room("mid")
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        parsed: list[str] = []
        original = Stylesheet.parse

        def parse(self: Stylesheet) -> None:
            parsed.append(app.theme)
            original(self)

        monkeypatch.setattr(Stylesheet, "parse", parse)
        stylesheet: Any = app.stylesheet
        await until(lambda: len(stylesheet._parsed) > 0, seen=lambda: "nothing parsed ahead")
        for _ in range(5):
            ahead = len(parsed)
            app.action_cycle_theme()  # the key's work, synchronously
            assert len(parsed) == ahead, f"t to {app.theme} parsed the stylesheet"
            # the next theme's rules, parsed ahead (back to the first: all were, in round one)
            await until(lambda n=ahead, t=app.theme: len(parsed) > n or t == "portal-dark")
            await settled(pilot)


async def test_unknown_theme_falls_back(room: Room) -> None:
    app = room("mid", theme="no-such-theme")
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await settled(pilot)
        assert app.theme == "portal-dark"
        assert any("unknown theme" in n.message for n in app._notifications)


async def test_help_and_palette_come_from_the_registry(room: Room) -> None:
    app = room("mid")
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert [a.id for a in app.screen.actions] == [a.id for a in ACTIONS]
        text = app.screen.query_one(KeyTable).plain
        assert "unavailable now" in text  # pause: nothing to pause in this room, and says so
        await pilot.press("escape")
        provider = ActionCommands(app.screen)
        hits = [str(hit.text) async for hit in provider.search("rollback")]
        assert "deployment: Rollback" in hits
        discovered = [str(hit.text) async for hit in provider.discover()]
        assert len(discovered) == len(ACTIONS)


async def test_refused_action_says_why(room: Room) -> None:
    app = room("mid")  # a deployment is running (from the journal): deploy is refused
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await settled(pilot)
        assert app.check_action("deploy", ()) is None  # dimmed in the footer
        await pilot.press("d")
        await until(lambda: bool(app._notifications))
        assert any("deployment or rollback is running" in n.message for n in app._notifications)
        assert app.check_action("pause_rollout", ()) is None


def flag_room(tmp_path: Path) -> tuple[OperatorRoom, Journal, FlagService]:
    path = tmp_path / "journal.db"
    journal = Journal(path)
    recorded.write_journal(journal, recorded.deployment("done"))
    service = FlagService(path)
    for name in recorded.FLAGS:
        service.create(name, description="release flag")
    config = recorded.config()
    engine = Engine(config, journal=journal)
    app = OperatorRoom(config, engine=engine, flag_service=service, clock=lambda: recorded.T0)
    return app, journal, service


async def test_flag_step_needs_two_presses_and_is_audited(tmp_path: Path) -> None:
    app, journal, service = flag_room(tmp_path)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await settled(pilot)
        await until(lambda: len(app.state.flags) == 3)
        await pilot.press("f")
        assert isinstance(app.screen, FlagsScreen)
        await pilot.press("down")  # company-dashboard -> invoice-pdf-v2
        name = recorded.FLAGS[1]
        await pilot.press("plus")
        await until(lambda: any("press + again" in n.message for n in app._notifications))
        await settled(pilot)
        assert not service.get(name).enabled  # one press only arms it
        notes = [n.message for n in app._notifications]
        assert any("press + again" in m for m in notes), notes
        await pilot.press("plus")
        await until(lambda: service.get(name).enabled)
        assert service.get(name).percentage == 10
        await until(lambda: next(f for f in app.state.flags if f.name == name).percentage == 10)
        await pilot.press("minus", "minus")
        await until(lambda: not service.get(name).enabled)
        entry = service.history(name, limit=1)[0]
        assert entry.reason.startswith("control room: step 10% -> off")
        changes = [e for e in journal.events() if e.kind == "flag.changed"]
        assert [e.data["flag"] for e in changes[-2:]] == [name, name]


async def test_emergency_disable_asks_for_a_reason(tmp_path: Path) -> None:
    app, _journal, service = flag_room(tmp_path)
    service.enable(recorded.FLAGS[0], 50)
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        await pilot.press("E")
        assert isinstance(app.screen, ReasonPrompt)
        await pilot.press("enter")  # no reason: refused, the dialog stays
        assert isinstance(app.screen, ReasonPrompt)
        await pilot.press(*"checkout errors", "enter")
        await until(lambda: service.emergency().active)
        assert service.emergency().reason == "checkout errors"
        await until(lambda: app.state.emergency == "checkout errors")
        assert "KILL SWITCH" in str(app.room.query_one("#flags").border_title)


async def test_log_keeps_up_with_thousands_of_lines_and_stays_bounded() -> None:
    from textual.app import App, ComposeResult

    class LogApp(App[None]):
        def compose(self) -> ComposeResult:
            yield IncidentLog(max_lines=5_000)

    app = LogApp()
    async with app.run_test(size=(100, 30)):
        log = app.query_one(IncidentLog)
        for chunk in range(20):
            log.append(
                LogLine(float(i), "error" if i % 100 == 0 else "debug", "web-1", f"line {i}")
                for i in range(chunk * 1000, (chunk + 1) * 1000)
            )
        await until(lambda: log.scroll_y == log.max_scroll_y and log.max_scroll_y > 0)
        assert log.total <= 5_000 * 1.05 and log.plain_lines()[-1].endswith("line 19999")
        assert log.scroll_y == log.max_scroll_y  # following the tail
        log.set_filter(min_severity="error")
        assert log.shown == len([i for i in range(20_000 - log.total, 20_000) if i % 100 == 0])
        log.append([LogLine(1.0, "error", "web-2", "late error")])
        assert log.plain_lines()[-1].endswith("late error")


def test_severity_labels_are_words() -> None:
    from tui.state import SEVERITY_LABEL

    assert SEVERITY_LABEL["warning"] == "WARN" and SEVERITY_LABEL["critical"] == "CRIT"
    assert len(set(SEVERITY_LABEL.values())) == len(SEVERITY_LABEL)
    assert Event(kind=Kind.INCIDENT.value).kind == "incident"


def test_docs_list_every_binding_from_the_registry() -> None:
    from tui.actions import markdown

    doc = (Path(__file__).resolve().parents[2] / "docs" / "control-room.md").read_text()
    start = doc.index("<!-- bindings:start -->") + len("<!-- bindings:start -->")
    end = doc.index("<!-- bindings:end -->")
    assert doc[start:end].strip() == markdown(), "run: python -m tui.actions, paste into docs"


async def test_theme_key_draws_what_opening_in_that_theme_draws(room: Room) -> None:
    """`t` restyles the panes' own coloured content (table cells, graph lines) in the same
    pass as Textual's restyle: the screen is the one a room opened in that theme shows."""

    async def screen_of(app: RoomApp, press: bool) -> str:
        async with app.run_test(size=(120, 36)) as pilot:
            await settled(pilot)
            if press:
                await pilot.press("t")
                app.clear_notifications()
                await settled(pilot)
            return app.export_screenshot(title="room")

    pressed = await screen_of(room("mid"), press=True)
    opened = await screen_of(room("mid", theme="portal-light"), press=False)
    assert pressed == opened


async def test_flags_screen_kept_between_opens_shows_the_newest_flags(room: Room) -> None:
    """`f` builds the flags screen once and keeps it when closed; opened again it shows
    what changed while it was hidden, not what it showed last."""
    from dataclasses import replace

    from tui.widgets.tables import FlagTable

    app = room("mid")
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        await pilot.press("f")
        await settled(pilot)
        first = app.screen
        assert isinstance(first, FlagsScreen)
        await pilot.press("escape")
        await settled(pilot)
        flags = list(app.state.flags)
        renamed = (replace(flags[0], name="renamed-while-hidden"), *flags[1:])
        assert app.bridge is not None
        app.bridge.apply(lambda state: replace(state, flags=renamed))
        app.bridge.flush()
        await settled(pilot)
        await pilot.press("f")
        await settled(pilot)
        assert app.screen is first  # the same screen, shown again
        table = first.query_one(FlagTable)
        assert table.get_row_at(0)[0].plain == "renamed-while-hidden"


async def test_flags_screen_kept_between_opens_follows_a_theme_change(room: Room) -> None:
    """A theme changed while the kept flags screen was hidden: opened again, it draws
    what a room opened in that theme draws (cells styled from the new theme)."""

    async def flags_screen(app: RoomApp, keys: tuple[str, ...]) -> str:
        async with app.run_test(size=(120, 36)) as pilot:
            await settled(pilot)
            for key in keys:
                await pilot.press(key)
                await settled(pilot)
            app.clear_notifications()
            await settled(pilot)
            assert isinstance(app.screen, FlagsScreen)
            return app.export_screenshot(title="flags")

    changed = await flags_screen(room("mid"), ("f", "escape", "t", "f"))
    opened = await flags_screen(room("mid", theme="portal-light"), ("f",))
    assert changed == opened


async def test_a_clock_tick_while_the_health_pane_is_torn_down_draws_nothing(room: Room) -> None:
    """The room's clock can tick once more while the app tears its panes down (seen at the
    end of the keyboard demo test): the tick draws nothing instead of failing the app."""
    from tui.widgets.graphs import HealthGraphs

    app = room("rollback")
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        graphs = app.room.query_one(HealthGraphs)
        await graphs.query_one("#health-strip").remove()
        graphs.tick(app.clock() + 5)  # raised NoMatches before
        await graphs.remove()
        app._tick()  # the room's clock, with no health pane at all


async def test_a_redraw_while_the_graphs_are_torn_down_draws_nothing(room: Room) -> None:
    """The graph timer can fire once more while the app removes the health pane's children
    (children go first, the pane after; seen at the end of the keyboard demo test in a
    full run): the redraw draws nothing instead of failing the app."""
    from tui.widgets.graphs import HealthGraphs

    app = room("rollback")
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        graphs = app.room.query_one(HealthGraphs)
        assert graphs.plots_ready
        samples, now = graphs.samples, graphs.now
        await graphs.query_one("#rt-graph").remove()
        graphs.plot(samples, now + 5)  # raised NoMatches before
        for name in ("#err-graph", "#rps-graph"):
            await graphs.query_one(name).remove()
        graphs.plot(samples, now + 6)


async def test_a_rollback_the_engine_refuses_is_an_error_line_in_the_log_and_journal(
    tmp_path: Path,
) -> None:
    """The room shows a deployment (its history read from another journal) that its
    engine's journal and hosts do not know, so the engine refuses (unknown id): the refusal
    is an ERROR line, in the log and the journal, not only a toast that fades."""
    from tui.screens.confirm import ConfirmRollback

    shown = Journal(tmp_path / "shown.db")
    recorded.write_journal(shown, recorded.deployment("done"))
    cfg = recorded.config()
    engine = Engine(cfg, journal=Journal(tmp_path / "engine.db"))
    app = OperatorRoom(
        cfg,
        engine=engine,
        journal=shown,  # the history shown; the engine's bus is the live feed
        load_flags=False,
        live_health=False,
    )
    async with app.run_test(size=(120, 36)) as pilot:
        await app.wait_caught_up()
        await pilot.press("R")
        await until(lambda: isinstance(app.screen, ConfirmRollback))
        await pilot.press(*recorded.DEPLOY_ID, "enter", *"test", "enter")
        lines = lambda: [line.text for _, line in app.room.log_widget._lines]  # noqa: E731
        await until(lambda: any("rollback not started" in t for t in lines()), 30, seen=lines)
    refused = [
        e
        for e in engine.journal.events(recorded.DEPLOY_ID)
        if e.kind == "incident" and "rollback not started" in e.data.get("message", "")
    ]
    assert refused and refused[0].data["severity"] == "error"
    assert "unknown deployment id" in refused[0].data["message"]
