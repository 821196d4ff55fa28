"""The reducer: events in, view model out. Pure, so no Textual and no app here."""

from __future__ import annotations

from backend.events import Event, Kind
from tests.tui import recorded
from tui.state import (
    DEPLOY_PHASES,
    ROLLBACK_PHASES,
    FlagView,
    RoomState,
    accepts,
    log_line,
    reduce,
    reduce_all,
    trigger_text,
    with_flags,
)


def ev(kind: Kind, dep: str | None = "d1", **kw: object) -> Event:
    data = kw.pop("data", {})
    return Event(kind=kind.value, deployment_id=dep, data=data, ts=kw.pop("ts", 100.0), **kw)  # type: ignore[arg-type]


def started(dep: str = "d1", **data: object) -> Event:
    base = {
        "revision": "abc",
        "release": "r1",
        "hosts": ["a", "b"],
        "operator": {"user": "u", "host": "h"},
    }
    base.update(data)
    return ev(Kind.DEPLOYMENT_STARTED, dep, data=base)


def test_initial_state_is_idle_with_the_nine_phases() -> None:
    state = RoomState()
    assert state.status == "idle"
    assert [p.name for p in state.timeline] == [n for n, _ in DEPLOY_PHASES]
    assert all(p.status == "pending" for p in state.timeline)
    assert state.elapsed(1000.0) is None


def test_deployment_started_sets_header_and_hosts() -> None:
    state = reduce(RoomState(), started())
    dep = state.deployment
    assert dep is not None and dep.id == "d1" and dep.revision == "abc"
    assert dep.operator == "u@h"
    assert [h.name for h in state.hosts] == ["a", "b"]
    assert state.status == "running"
    assert state.elapsed(160.0) == 60.0


def test_phases_run_and_finish_with_durations_from_the_events() -> None:
    events = [
        started(),
        ev(Kind.PHASE_STARTED, phase="backup", ts=110.0, data={"number": 2, "title": "Backup"}),
        ev(Kind.PHASE_FINISHED, phase="backup", ts=113.5, data={"status": "succeeded"}),
        ev(Kind.PHASE_STARTED, phase="code", ts=114.0, data={"number": 4, "title": "Code"}),
    ]
    state = reduce_all(RoomState(), events)
    by = {p.name: p for p in state.phases}
    assert by["backup"].status == "done" and by["backup"].seconds == 3.5
    assert by["code"].status == "running" and by["code"].title == "Code"
    assert state.current_phase is not None and state.current_phase.name == "code"


def test_phase_statuses_are_normalised() -> None:
    state = reduce(RoomState(), started())
    for raw, want in (
        ("succeeded", "done"),
        ("failed", "failed"),
        ("skipped", "skipped"),
        ("interrupted", "cancelled"),
        ("paused", "paused"),
    ):
        s = reduce(state, ev(Kind.PHASE_FINISHED, phase="backup", data={"status": raw}))
        assert next(p for p in s.phases if p.name == "backup").status == want


def test_unknown_phase_is_shown_not_dropped() -> None:
    state = reduce(RoomState(), ev(Kind.PHASE_STARTED, phase="warmup", data={"title": "Warm up"}))
    assert state.phases[-1].name == "warmup" and state.phases[-1].title == "Warm up"


def test_check_results_count_into_their_phase_and_summary_overrides() -> None:
    state = reduce(RoomState(), started())
    for status in ("pass", "pass", "warn", "fail"):
        state = reduce(state, ev(Kind.CHECK_RESULT, phase="validate-pre", data={"status": status}))
    checks = next(p for p in state.phases if p.name == "validate-pre").checks
    assert checks is not None
    assert (checks.passed, checks.warned, checks.failed) == (2, 1, 1)
    state = reduce(
        state,
        ev(
            Kind.CHECK_SUMMARY,
            phase="validate-pre",
            data={"score": 88, "decision": "go", "counts": {"pass": 13, "warn": 2, "fail": 0}},
        ),
    )
    checks = next(p for p in state.phases if p.name == "validate-pre").checks
    assert checks is not None
    assert (checks.passed, checks.warned, checks.failed, checks.score) == (13, 2, 0, 88.0)
    assert checks.decision == "go"


def test_hosts_follow_state_and_steps() -> None:
    state = reduce_all(
        RoomState(),
        [
            started(),
            ev(Kind.HOST_STATE, host="a", data={"state": "switching", "release": "r1"}),
            ev(Kind.STEP_STARTED, host="b", data={"step": "install"}),
            ev(
                Kind.STEP_FINISHED,
                host="b",
                data={"step": "install", "ok": False, "exit_status": 2},
            ),
            ev(
                Kind.HOST_STATE, host=None, data={"state": "checkpoint"}
            ),  # the engine's, for resume
        ],
    )
    a, b = state.hosts
    assert (a.state, a.release) == ("switching", "r1")
    assert (b.step, b.step_failed) == ("install", True)


def test_metric_samples_aggregate_to_graph_and_per_host_to_table() -> None:
    state = reduce(RoomState(), started())
    state = reduce(
        state, ev(Kind.METRIC_SAMPLE, None, data={"p95": 180.0, "error_rate": 0.01, "rps": 40})
    )
    state = reduce(
        state, ev(Kind.METRIC_SAMPLE, None, host="a", data={"p95": 210.0, "error_rate": 0.02})
    )
    assert len(state.health) == 1 and state.health[0].p95 == 180.0
    assert state.hosts[0].p95 == 210.0 and state.hosts[0].error_rate == 0.02


def test_health_series_is_bounded() -> None:
    state = RoomState()
    for i in range(700):
        state = reduce(state, ev(Kind.METRIC_SAMPLE, None, ts=float(i), data={"p95": float(i)}))
    assert len(state.health) == 600
    assert state.health[-1].p95 == 699.0


def test_flags_from_listing_and_changes() -> None:
    state = with_flags(
        RoomState(),
        [
            {
                "name": "b",
                "enabled": True,
                "percentage": 50,
                "overrides": 2,
                "evaluations_last_hour": 7,
            }
        ],
        emergency="",
    )
    state = reduce(
        state,
        ev(
            Kind.FLAG_CHANGED,
            None,
            data={
                "flag": "a",
                "change": "create",
                "after": {
                    "name": "a",
                    "enabled": False,
                    "percentage": 100,
                    "overrides": {"company": {"x": True}, "user": {}},
                },
                "reason": "r",
                "operator": {"user": "u", "host": "h"},
            },
        ),
    )
    a, b = state.flags
    assert a.name == "a" and a.state() == "off" and a.overrides == 1 and a.changed_by == "u@h"
    assert b.state() == "partial" and b.evaluations == 7 and b.overrides == 2
    assert FlagView("c", enabled=True, percentage=100).state() == "on"


def test_kill_switch_marks_every_flag_and_restore_clears_it() -> None:
    state = with_flags(RoomState(), [{"name": "a", "enabled": True, "percentage": 100}])
    on = reduce(
        state,
        ev(
            Kind.FLAG_CHANGED,
            None,
            data={
                "flag": "*",
                "change": "emergency-disable",
                "after": {"active": True, "reason": "fire"},
            },
        ),
    )
    assert on.emergency == "fire" and on.flags[0].state(bool(on.emergency)) == "killed"
    off = reduce(
        on, ev(Kind.FLAG_CHANGED, None, data={"flag": "*", "change": "restore", "after": None})
    )
    assert off.emergency == ""


def test_rollback_switches_the_timeline_to_the_ten_phases() -> None:
    state = reduce_all(
        RoomState(),
        [
            started(),
            ev(
                Kind.ROLLBACK_STARTED,
                run="rollback",
                data={"reason": "slow", "trigger": {"kind": "failure", "phase": "switch"}},
            ),
            ev(Kind.PHASE_STARTED, run="rollback", phase="rb-declare", data={"number": 1}),
        ],
    )
    assert state.status == "rolling-back"
    assert [p.name for p in state.timeline] == [n for n, _ in ROLLBACK_PHASES]
    assert state.timeline[0].status == "running"
    assert state.rollback is not None and state.rollback.trigger == "automatic: phase switch failed"
    state = reduce(
        state, ev(Kind.ROLLBACK_FINISHED, run="rollback", ts=130.0, data={"outcome": "succeeded"})
    )
    assert state.status == "rolled-back"
    assert state.elapsed(9999.0) == 30.0  # ends with the rollback, not the clock


def test_other_deployments_and_dry_runs_are_ignored() -> None:
    state = reduce(RoomState(), started("d1"))
    dry = started("dry-d2", dry_run=True)
    assert not accepts(state, dry)
    assert reduce(state, dry).deployment.id == "d1"  # type: ignore[union-attr]
    stray = ev(Kind.PHASE_STARTED, "old", phase="backup")
    assert not accepts(state, stray)
    newer = reduce(state, started("d3"))
    assert newer.deployment is not None and newer.deployment.id == "d3"
    pinned = reduce(RoomState(pinned="d1"), started("d1"))
    assert reduce(pinned, started("d3")).deployment.id == "d1"  # type: ignore[union-attr]


def test_unchanged_slices_keep_their_identity() -> None:
    state = reduce(RoomState(), started())
    after = reduce(state, ev(Kind.METRIC_SAMPLE, None, data={"p95": 1.0}))
    assert (
        after.phases is state.phases and after.hosts is state.hosts and after.flags is state.flags
    )
    assert after.health is not state.health


def test_reducer_tolerates_odd_data() -> None:
    odd = [
        ev(Kind.PHASE_FINISHED, phase=None, data={}),
        ev(Kind.METRIC_SAMPLE, None, data={"p95": "n/a", "rps": True}),
        ev(Kind.FLAG_CHANGED, None, data={}),
        ev(Kind.CHECK_RESULT, data={"ok": False}),
        Event(kind="something.new", data={"x": 1}),
    ]
    state = reduce_all(RoomState(), odd)
    assert state.health[0].p95 is None and state.health[0].rps is None
    assert log_line(odd[-1]) is not None


def test_log_lines_carry_text_labels_for_every_severity() -> None:
    assert log_line(ev(Kind.METRIC_SAMPLE, data={})) is None
    line = log_line(ev(Kind.INCIDENT, data={"severity": "critical", "message": "down"}))
    assert line is not None and (line.severity, line.text) == ("critical", "down")
    step = log_line(ev(Kind.STEP_OUTPUT, host="a", data={"line": "hello\n"}))
    assert step is not None and (step.severity, step.source, step.text) == ("debug", "a", "hello")
    failed = log_line(
        ev(Kind.STEP_FINISHED, host="a", data={"step": "x", "ok": False, "exit_status": 3})
    )
    assert failed is not None and failed.severity == "error" and "exit 3" in failed.text
    assert trigger_text({"kind": "monitor", "rule": "p95"}) == "automatic: rule p95"


def test_the_recorded_stages_reduce_as_expected() -> None:
    mid = reduce_all(RoomState(), recorded.deployment("mid"))
    assert mid.status == "running" and mid.current_phase is not None
    assert mid.current_phase.name == "switch"
    assert reduce_all(RoomState(), recorded.deployment("done")).status == "succeeded"
    rb = reduce_all(RoomState(), recorded.deployment("rollback"))
    assert rb.status == "rolling-back" and rb.emergency
    assert reduce_all(RoomState(), recorded.deployment("rolled_back")).status == "rolled-back"


def test_flag_listing_wins_over_older_events_and_loses_to_newer() -> None:
    old = ev(
        Kind.FLAG_CHANGED,
        None,
        ts=50.0,
        data={"flag": "a", "change": "enable", "after": {"name": "a", "enabled": True}},
    )
    listed = with_flags(RoomState(), [{"name": "a", "enabled": False}], "", listed_at=100.0)
    assert reduce(listed, old).flags[0].enabled is False  # the listing already has it
    newer = ev(
        Kind.FLAG_CHANGED,
        None,
        ts=150.0,
        data={"flag": "a", "change": "enable", "after": {"name": "a", "enabled": True}},
    )
    state = reduce(listed, newer)
    assert state.flags[0].enabled is True
    stale = with_flags(state, [{"name": "a", "enabled": False}], "", listed_at=120.0)
    assert stale.flags[0].enabled is True  # a listing older than the event does not undo it


def test_monitor_samples_in_the_monitors_own_shape() -> None:
    """backend/monitor/runner.py: total has host=None and data host "total", scope "total";
    the baseline summary carries aggregate=True and is not graphed."""
    state = reduce(RoomState(), started())
    total = ev(
        Kind.METRIC_SAMPLE,
        None,
        data={"host": "total", "scope": "total", "p95": 150.0, "end": 123.0, "error_rate": 0.0},
    )
    host = ev(Kind.METRIC_SAMPLE, None, host="a", data={"host": "a", "scope": "host", "p95": 99.0})
    base = ev(
        Kind.METRIC_SAMPLE,
        None,
        data={"host": "total", "scope": "total", "p95": 1.0, "aggregate": True},
    )
    state = reduce_all(state, [total, host, base])
    assert [(s.ts, s.p95) for s in state.health] == [(123.0, 150.0)]
    assert state.hosts[0].p95 == 99.0
