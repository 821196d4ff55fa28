"""The room tells the truth: every figure has an age or a state, the hosts' releases never
leave the screen, dialogs fit at 80x24 (issue 16's scenarios 1-3).

Live health is sampled from a real HTTP server on loopback, through the monitor's own
probes; nothing here is mocked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from backend.config import parse_config
from backend.engine import Engine
from backend.events import Event, Kind
from backend.journal import Journal
from backend.schema import dump
from tests.tui import recorded
from tests.tui.conftest import until
from tui.app import OperatorRoom, RoomApp
from tui.screens.confirm import ConfirmDeploy
from tui.settle import settled
from tui.state import RoomState, reduce, reduce_all
from tui.widgets.graphs import HealthGraphs
from tui.widgets.header import DeployHeader
from tui.widgets.hoststrip import HostStrip
from tui.widgets.tables import HostTable

Room = Callable[..., RoomApp]


# -- a real portal health endpoint on loopback ------------------------------------------------


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health"
    finally:
        server.shutdown()
        server.server_close()


def _live_config(url: str, tmp_path: Path) -> Any:
    return parse_config(
        {
            "portal": {
                "name": "business-portal",
                "repository": "/srv/git/business-portal.git",
                "deploy_path": "/var/www/business-portal",
                "revision": "main",
            },
            "hosts": [
                {"name": n, "address": "127.0.0.1", "transport": "local", "health_url": url}
                for n in recorded.HOSTS
            ],
            "state": {"dir": str(tmp_path / "state")},
        },
        "live",
    )


# -- scenario 1: health is live, and says how old it is ---------------------------------------


async def test_idle_room_samples_health_itself_and_shows_the_age(
    health_server: str, tmp_path: Path
) -> None:
    """No deployment runs: the graphs and the hosts still move, and say how old they are."""
    cfg = _live_config(health_server, tmp_path)
    journal = Journal(tmp_path / "journal.db")
    app = OperatorRoom(cfg, engine=Engine(cfg, journal=journal), load_flags=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await app.wait_caught_up()
        await until(lambda: len(app.state.health) >= 2, timeout=20)
        assert app.state.status == "idle" and app.state.health_live
        age = app.state.sample_age(time.time())
        assert age is not None and age < 5.0
        await until(lambda: "live · " in str(app.room.query_one(HealthGraphs).border_subtitle))
        hosts = {h.name: h for h in app.state.hosts}
        assert set(hosts) == set(recorded.HOSTS)
        assert all(h.sampled_at is not None and h.p95 is not None for h in hosts.values())
        assert "sampled" in str(app.room.query_one(HostTable).border_subtitle)
        await pilot.press("q")
    # nothing of the live view was written to the journal: it is shown, not kept
    assert not [e for e in journal.events() if e.kind == Kind.METRIC_SAMPLE]


def _sample(ts: float, host: str | None, p95: float, *, run: str = "monitor") -> Event:
    data = {"p50": p95 / 2, "p95": p95, "p99": p95 * 1.5, "error_rate": 0.1, "rps": 10.0}
    return Event(kind=Kind.METRIC_SAMPLE.value, run=run, host=host, data=data, ts=ts)


def test_a_hosts_figures_of_a_previous_release_are_never_shown_as_current() -> None:
    state = reduce_all(RoomState(), recorded.deployment("rollback"))
    web1 = next(h for h in state.hosts if h.name == "web-1")
    assert web1.release == recorded.PREVIOUS
    before = reduce(state, _sample(recorded.T0 + 500, "web-1", 254.0))
    switched = reduce(
        before,
        Event(
            kind=Kind.HOST_STATE.value,
            deployment_id=recorded.DEPLOY_ID,
            host="web-1",
            data={"state": "live", "release": recorded.RELEASE},
            ts=recorded.T0 + 501,
        ),
    )
    web1 = next(h for h in switched.hosts if h.name == "web-1")
    assert (web1.p95, web1.error_rate, web1.sampled_at) == (None, None, None)


def test_live_samples_are_drawn_once_and_keep_coming_after_a_rollback() -> None:
    """After an automatic rollback the engine's monitor is gone; live samples still land,
    and the engine's samples of the same windows are not drawn twice."""
    state = reduce_all(RoomState(), recorded.deployment("rolled_back"))
    end = state.last_ts
    live = reduce(state, _sample(end + 180, None, 120.0, run="live"))
    live = reduce(live, _sample(end + 180, "web-1", 118.0, run="live"))
    assert live.health_live and live.health[-1].p95 == 120.0
    web1 = next(h for h in live.hosts if h.name == "web-1")
    assert web1.p95 == 118.0 and web1.sampled_at == end + 180
    again = reduce(live, _sample(end + 181, None, 999.0))  # the engine's, same window
    assert again.health is live.health


def test_deployments_and_rollbacks_mark_a_break_on_the_graphs() -> None:
    state = reduce_all(RoomState(), recorded.deployment("rollback"))
    labels = [label for _, label in state.marks]
    assert labels == [recorded.DEPLOY_ID, "rollback"]


async def test_graph_axis_ends_now_and_the_strip_shows_the_age(room: Room) -> None:
    app = room("done")
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        graphs = app.room.query_one(HealthGraphs)
        assert "5s ago" in str(graphs.border_subtitle)  # the recorded clock: 5 s after
        assert "5s ago" in graphs.strip(graphs.samples).plain


# -- scenarios 2 and 3: at 80x24, which release each host serves is always on screen ------


@pytest.mark.parametrize("stage", ["mid", "rollback", "rolled_back"])
async def test_hosts_and_releases_stay_on_screen_at_80x24(room: Room, stage: str) -> None:
    app = room(stage)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        strip = app.room.query_one(HostStrip)
        assert strip.display and strip.region.height >= 1
        text = strip.render().plain if hasattr(strip.render(), "plain") else str(strip.render())
        for host in recorded.HOSTS:
            assert host in text
        for release, _hosts in app.state.releases:
            assert release in text


async def test_after_a_rollback_the_header_names_the_live_release(room: Room) -> None:
    app = room("rolled_back")
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        header = app.room.query_one(DeployHeader).render_header(app.state, app.clock())
        top = header.plain.splitlines()[0]
        assert f"live {recorded.PREVIOUS}" in top
        assert top.index("live") < top.index("withdrawn")
        assert app.state.live_release == recorded.PREVIOUS


async def test_plan_dialog_fits_at_80x24_with_its_keys_visible(room: Room) -> None:
    app = room("done")
    plan = "\n".join(
        f"web-{i % 3 + 1}  phase {i // 10 + 1}  $ command number {i}" for i in range(90)
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        app.notify("building the dry-run plan (read-only probes run on the hosts)…")
        app.open_plan(ConfirmDeploy("business-portal: revision main", plan))
        await settled(pilot)
        dialog = app.screen
        assert isinstance(dialog, ConfirmDeploy)
        screen = dialog.region
        for selector in ("#confirm", "#cancel", ".hint"):
            widget = dialog.query_one(selector)
            assert screen.contains_region(widget.region), f"{selector} is off screen"
            assert widget.region.height >= 1
        assert not list(app._notifications), "a toast would cover the plan"
        await pilot.press("n")


# -- scenario 4 (and part of 8): who acted, breaches as they happen, counts that match ------


def test_trigger_labels_say_who_acted() -> None:
    from tui.state import trigger_text

    monitor_rule = {  # what the monitor's TriggerInfo.to_dict() gives the rollback
        "rule": "error-rate",
        "metric": "error_rate",
        "host": "total",
        "op": ">",
        "threshold": 0.01,
        "values": [0.031, 0.0345],
        "reason": "rule error-rate: error_rate > 1% on all hosts in 2 window(s): 3.1%, 3.45%",
    }
    text = trigger_text(monitor_rule)
    assert "manual" not in text
    assert text.startswith("automatic: rule error-rate") and "3.45%" in text and "> 1%" in text
    p95 = trigger_text({"rule": "p95", "metric": "p95", "op": ">", "threshold": 500,
                        "values": [612.4]})  # fmt: skip
    assert p95 == "automatic: rule p95 (p95 612 ms > 500 ms)"
    failure = trigger_text({"kind": "failure", "phase": "validate-post", "detail": "p95-latency"})
    assert failure == "automatic: phase validate-post failed (p95-latency)"
    manual = trigger_text({"kind": "manual", "operator": {"user": "alice", "host": "bastion"}})
    assert manual == "operator alice@bastion"
    assert trigger_text({"kind": "manual"}) == "operator (unknown)"


def test_the_header_shows_a_threshold_breach_as_it_happens(room: Room) -> None:
    state = reduce_all(RoomState(), recorded.deployment("mid"))
    assert state.criticals == 0
    bad = reduce(state, _sample(state.last_ts + 1, None, 252.0))  # error rate 10 %
    header = DeployHeader(p95_limit_ms=200.0, error_rate_limit=0.01)
    bottom = header.render_header(bad, bad.last_ts + 1).plain.splitlines()[1]
    assert "no incidents" not in bottom
    assert "p95 252 ms > 200 ms" in bottom and "err 10.00% > 1.00%" in bottom
    calm = header.render_header(state, state.last_ts + 1).plain.splitlines()[1]
    assert "p95" not in calm


async def test_header_counts_match_the_log(room: Room) -> None:
    app = room("rollback")
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        lines = app.room.log_widget.plain_lines()
        since = next(
            i for i, line in enumerate(lines) if "deployment " in line and " started" in line
        )
        shown = lines[since:]
        for label, count in (("CRIT", app.state.criticals), ("ERROR", app.state.errors),
                             ("WARN", app.state.warnings)):  # fmt: skip
            assert count == sum(1 for line in shown if line.split()[1] == label), label
        assert app.state.criticals >= 2  # the incident and the rollback's start


# -- scenarios 5 and 8: the log reads whole, and says why it is empty ---------------------


async def test_escape_clears_a_kept_filter(room: Room) -> None:
    app = room("rollback")
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        log = app.room.log_widget
        await pilot.press("slash", *"web-2", "enter", "s", "s")
        assert log.has_focus and log.filter_text == "web-2" and log.min_severity == "warning"
        await pilot.press("escape")
        assert log.filter_text == "" and log.min_severity == "debug" and not log.filtered


async def test_an_empty_result_says_0_lines_match(room: Room) -> None:
    app = room("rollback")
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        log = app.room.log_widget
        await pilot.press("slash", *"no-such-thing", "enter")
        await settled(pilot)
        assert log.shown == 0
        assert "0 lines match" in str(log.border_subtitle)
        assert "0 lines match" in log.render_line(0).text


async def test_wrap_shows_a_long_line_whole_at_80x24(room: Room) -> None:
    app = room("rollback")
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        log = app.room.log_widget
        await pilot.press("slash", *"Rolling back automatically", "enter")
        await settled(pilot)
        assert log.shown == 1
        whole = log.plain_lines()[0]
        width = log.scrollable_content_region.width
        assert len(whole) > width  # cut at the edge...
        await pilot.press("w")
        await settled(pilot)
        assert log.wrap
        rows = [log.render_line(y).text.rstrip() for y in range(log.virtual_size.height)]
        assert len(rows) > 1 and "".join(r for r in rows).replace(" ", "") == whole.replace(
            " ", ""
        )  # ...and whole once wrapped


async def test_enter_on_a_line_shows_it_whole_with_its_evidence(room: Room) -> None:
    from tui.screens.detail import LogDetail

    app = room("rollback")
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        await pilot.press("slash", *"ROLLBACK started", "enter")
        await settled(pilot)
        await pilot.press("enter")
        await settled(pilot)
        screen = app.screen
        assert isinstance(screen, LogDetail)
        text = screen.text
        assert "automatic: phase 7 (Post-deployment validation) failed: p95-latency" in text
        assert "validate-post" in text and "trigger" in text  # the evidence, whole
        await pilot.press("escape")
        await settled(pilot)
        assert not isinstance(app.screen, LogDetail)


# -- scenarios 6, 7 and 8: the watcher, read-only keys, the rollback dialog ---------------


def _dry_run(events: list[Event], dep_id: str) -> list[Event]:
    from dataclasses import replace as copy

    return [
        copy(e, deployment_id=dep_id, data={**e.data, "dry_run": True}, ts=e.ts + 400)
        for e in events
        if e.deployment_id
    ]


async def test_watch_opens_on_the_last_deployment_not_on_a_later_plan(tmp_path: Path) -> None:
    from backend.feed import JournalFeed
    from tui.app import WatchRoom

    path = tmp_path / "journal.db"
    writer = Journal(path)
    recorded.write_journal(writer, recorded.deployment("done"))
    recorded.write_journal(writer, _dry_run(recorded.deployment("done"), "bp-plan"))
    journal = Journal(path)
    app = WatchRoom(recorded.config(), journal=journal, feed=JournalFeed(journal, poll_interval=0.05),
                    clock=lambda: recorded.T0 + 600, source="journal", load_flags=False)  # fmt: skip
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        assert app.state.status == "succeeded"
        assert app.state.deployment is not None and app.state.deployment.id == recorded.DEPLOY_ID
        assert not [line for line in app.room.log_widget.plain_lines() if "bp-plan" in line]


async def test_a_dangerous_key_in_watch_mode_flashes_read_only(room: Room) -> None:
    app = room("done", watch=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        before = app.journal.last_seq() if app.journal else 0
        await pilot.press("R")
        await settled(pilot)
        messages = [n.message for n in app._notifications]
        assert any("read-only" in m and "rollback" in m.lower() for m in messages), messages
        header = app.room.query_one(DeployHeader)
        assert header.has_class("-flash")
        assert (app.journal.last_seq() if app.journal else 0) == before


async def test_rollback_dialog_says_what_is_missing_without_colour(room: Room) -> None:
    from textual.widgets import Button, Input, Label

    from tui.screens.confirm import ConfirmRollback

    app = room("done")
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        await pilot.press("R")
        await settled(pilot)
        dialog = app.screen
        assert isinstance(dialog, ConfirmRollback)
        typed = dialog.query_one("#typed-id", Input)
        assert typed.placeholder != recorded.DEPLOY_ID  # an empty box never looks typed
        status = dialog.query_one("#problem", Label)
        button = dialog.query_one("#confirm", Button)
        assert "missing" in str(status.render()) and "id" in str(status.render())
        assert "locked" in str(button.label)
        await pilot.press(*recorded.DEPLOY_ID, "enter", "enter")  # no reason yet
        await settled(pilot)
        assert isinstance(app.screen, ConfirmRollback)
        text = str(status.render())
        assert "reason" in text and "missing" in text and "id" not in text.split("missing")[1]
        await pilot.press(*"p95 high")
        await settled(pilot)
        assert "armed" in str(status.render()).lower()
        assert "locked" not in str(button.label) and not button.disabled
        await pilot.press("escape")


def test_watch_without_an_id_uses_the_journal_that_holds_deployments(
    fresh_redis: Any, tmp_path: Path
) -> None:
    """A finished deployment in the local journal is the newest one known: with Redis
    configured too, the watcher still opens on it (it showed IDLE from an empty stream)."""
    from tui.app import watch_feed

    journal = Journal(tmp_path / "j.db")
    raw = dump(recorded.config())
    raw["redis"] = {"url": fresh_redis.url, "prefix": "t"}
    with_redis = parse_config(raw)
    recorded.write_journal(journal, recorded.deployment("done"))
    assert watch_feed(with_redis, journal, None)[1] == "journal"


# -- scenario 8: a dry run is a plan, not a deployment -------------------------------------


def _journal_with_a_plan(tmp_path: Path) -> Path:
    from backend.demo.sandbox import dump_toml

    state = tmp_path / "state"
    state.mkdir()
    data = {
        "portal": {"name": "business-portal", "repository": "/srv/git/bp.git",
                   "deploy_path": "/var/www/bp", "revision": "main"},
        "hosts": [{"name": "web-1", "address": "127.0.0.1", "transport": "local"}],
        "state": {"dir": str(state)},
    }  # fmt: skip
    path = tmp_path / "portal-ops.toml"
    path.write_text(dump_toml(data))
    journal = Journal(state / "journal.db")
    recorded.write_journal(journal, recorded.deployment("done"))
    recorded.write_journal(journal, _dry_run(recorded.deployment("done"), "bp-plan"))
    return path


def test_history_hides_plans_unless_all(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tui.commands.history import history

    config = _journal_with_a_plan(tmp_path)
    plain = CliRunner().invoke(history, ["--config", str(config)])
    assert plain.exit_code == 0, plain.output
    assert recorded.DEPLOY_ID in plain.output and "bp-plan" not in plain.output
    every = CliRunner().invoke(history, ["--config", str(config), "--all"])
    assert every.exit_code == 0 and "bp-plan" in every.output


def test_a_plan_is_never_logged_as_a_deployment_that_succeeded() -> None:
    from tui.state import log_line

    plan = _dry_run(recorded.deployment("done"), "bp-plan")
    finished = next(e for e in plan if e.kind == Kind.DEPLOYMENT_FINISHED)
    line = log_line(finished)
    assert line is not None
    assert "succeeded" not in line.text and "plan" in line.text and line.severity != "ok"


# -- a user keymap, and a host's own view --------------------------------------------------


def test_ui_keys_in_the_config_are_checked_against_the_binding_ids() -> None:
    from tui.keymap import KeymapError, keymap_for

    raw = dump(recorded.config())
    raw["ui"] = {"keys": {"wrap": "x", "zoom": "Z,ctrl+z"}}
    cfg = parse_config(raw)
    assert keymap_for(cfg.ui.keys) == {"portal-ops.wrap": "x", "portal-ops.zoom": "Z,ctrl+z"}
    with pytest.raises(KeymapError, match="no-such-action"):
        keymap_for({"no-such-action": "x"})
    with pytest.raises(KeymapError, match=r"'d'.*deploy"):
        keymap_for({"wrap": "d"})  # taken by deploy, which keeps it


async def test_a_remapped_key_runs_its_action_and_the_old_one_does_not(tmp_path: Path) -> None:
    app = recorded.build_room(tmp_path / "j.db", "rollback", keymap={"wrap": "x"})
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        log = app.room.log_widget
        await pilot.press("w")
        await settled(pilot)
        assert not log.wrap
        await pilot.press("x")
        await settled(pilot)
        assert log.wrap


async def test_enter_on_a_host_shows_its_steps_and_their_output(room: Room) -> None:
    from tui.screens.host import HostDetail

    app = room("done")
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        await pilot.press("2", "enter")
        await settled(pilot)
        screen = app.screen
        assert isinstance(screen, HostDetail) and screen.host == "web-1"
        text = screen.text
        assert f"release {recorded.RELEASE}" in text
        assert "$ composer install --no-dev --optimize-autoloader" in text
        assert "Installing vendor/package-0000" in text
        assert "web-2" not in text
        await pilot.press("escape")
        await settled(pilot)
        assert not isinstance(app.screen, HostDetail)


def test_compact_check_counts_never_hide_warnings() -> None:
    from tui.state import Checks
    from tui.widgets.timeline import checks_text

    parts = checks_text(Checks(passed=14, warned=1, decision="go"), compact=True)
    text = "".join(p if isinstance(p, str) else p[0] for p in parts)
    assert "1w" in text and "14/15 ok" in text


async def test_rollback_dialog_takes_type_ahead_after_enter_as_the_reason(room: Room) -> None:
    """An operator types the id, enter, the reason and enter without waiting (or a terminal
    delivers them in one read): the reason goes to the reason box, not onto the id."""
    from textual import events
    from textual.widgets import Input

    from tui.screens.confirm import ConfirmRollback

    app = room("done")
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        await pilot.press("R")
        await settled(pilot)
        dialog = app.screen
        assert isinstance(dialog, ConfirmRollback)
        burst = [*recorded.DEPLOY_ID, "enter", *"p95 high"]
        for key in burst:  # posted at once, as one read from the terminal is
            char = None if key == "enter" else key
            name = "space" if key == " " else key
            app.post_message(events.Key(name, char if key != "enter" else "\r"))
        await settled(pilot)
        assert dialog.query_one("#typed-id", Input).value == recorded.DEPLOY_ID
        assert dialog.query_one("#reason", Input).value == "p95 high"
