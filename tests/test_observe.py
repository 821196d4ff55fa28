"""What goes out to the tools teams watch: Prometheus metrics (textfile collector and
Pushgateway), Grafana annotations, PagerDuty Events v2, and one sev1 then a resolve.

Events are emitted on a real bus as the engine and the monitor emit them; every receiver
is a real HTTP server on loopback (backend/notify/sink.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend.events import Event, EventBus, Kind
from backend.notify import Notifier, NotifyConfig
from backend.notify.sink import WebhookSink
from backend.observe import DeployMetrics, MetricsConfig
from backend.schema import parse

TARGET = "business-portal"


def emit(bus: EventBus, kind: str, deployment: str, run: str = "deploy", phase: str | None = None,
         **data: Any) -> None:  # fmt: skip
    bus.emit(Event(kind=kind, deployment_id=deployment, run=run, phase=phase, data=data))


def started(bus: EventBus, deployment: str) -> None:
    emit(bus, Kind.DEPLOYMENT_STARTED, deployment, target=TARGET, revision="v2", release=deployment,
         operator={"user": "alice"}, hosts=["web-1"], dry_run=False)  # fmt: skip


def deployment(bus: EventBus, ident: str, outcome: str, rollback: bool = False) -> None:
    """One deployment's events: phases with durations, maybe a rollback, the outcome."""
    started(bus, ident)
    emit(bus, Kind.PHASE_FINISHED, ident, phase="backup", status="succeeded", seconds=4.5)
    emit(bus, Kind.PHASE_FINISHED, ident, phase="code", status="succeeded", seconds=12.25)
    if rollback:
        emit(bus, Kind.INCIDENT, ident, severity="critical",
             message="error rate 5% > 1%; starting the automatic rollback")  # fmt: skip
        emit(bus, Kind.ROLLBACK_STARTED, ident, run="rollback", reason="error rate",
             trigger={"kind": "monitor", "rule": "error_rate"})  # fmt: skip
        emit(bus, Kind.ROLLBACK_FINISHED, ident, run="rollback", outcome="succeeded", seconds=7.0)
    emit(bus, Kind.DEPLOYMENT_FINISHED, ident, outcome=outcome, seconds=30.0)


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(path.read_text()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


# -- Prometheus ----------------------------------------------------------------------


def test_textfile_metrics_count_across_runs(tmp_path: Path) -> None:
    prom = tmp_path / "textfile" / "portal_ops.prom"
    config = MetricsConfig(textfile=str(prom))

    bus = EventBus()
    bus.subscribe(DeployMetrics(config, target=TARGET))
    deployment(bus, "bp-1", "succeeded")
    first = samples(prom)
    assert (
        first[("portal_ops_deployments_total", (("outcome", "succeeded"), ("target", TARGET)))] == 1
    )
    assert (
        first[("portal_ops_phase_duration_seconds", (("phase", "code"), ("target", TARGET)))]
        == 12.25
    )
    success_at = first[("portal_ops_last_success_timestamp_seconds", (("target", TARGET),))]
    assert success_at > 1.7e9

    bus = EventBus()  # the next run is another process: the counts go on from the file
    bus.subscribe(DeployMetrics(config, target=TARGET))
    deployment(bus, "bp-2", "rolled_back", rollback=True)
    second = samples(prom)
    assert (
        second[("portal_ops_deployments_total", (("outcome", "succeeded"), ("target", TARGET)))]
        == 1
    )
    assert (
        second[("portal_ops_deployments_total", (("outcome", "rolled_back"), ("target", TARGET)))]
        == 1
    )
    assert (
        second[("portal_ops_rollbacks_total", (("outcome", "succeeded"), ("target", TARGET)))] == 1
    )
    assert second[("portal_ops_rollback_duration_seconds", (("target", TARGET),))] == 7.0
    assert (
        second[("portal_ops_last_success_timestamp_seconds", (("target", TARGET),))] == success_at
    )
    assert [p.name for p in prom.parent.iterdir()] == [prom.name]  # temp file renamed away


def test_dry_runs_are_not_counted(tmp_path: Path) -> None:
    prom = tmp_path / "portal_ops.prom"
    bus = EventBus()
    bus.subscribe(DeployMetrics(MetricsConfig(textfile=str(prom)), target=TARGET))
    emit(bus, Kind.DEPLOYMENT_STARTED, "bp-dry", dry_run=True)
    emit(bus, Kind.DEPLOYMENT_FINISHED, "bp-dry", outcome="succeeded", seconds=1.0, dry_run=True)
    assert not prom.exists()


def test_metrics_pushed_to_a_pushgateway() -> None:
    with WebhookSink() as gateway:
        bus = EventBus()
        config = MetricsConfig(pushgateway=f"http://127.0.0.1:{gateway.port}")
        bus.subscribe(DeployMetrics(config, target=TARGET))
        deployment(bus, "bp-1", "succeeded")
        [push] = gateway.wait_for(1)
    assert push.method == "PUT"
    assert push.path == f"/metrics/job/portal-ops/target/{TARGET}"
    body = push.body.decode()
    assert 'portal_ops_deployments_total{outcome="succeeded",target="business-portal"} 1.0' in body


def test_bad_metrics_config_names_the_key() -> None:
    with pytest.raises(ValueError, match="pushgateway"):
        parse(MetricsConfig, {"pushgateway": "ftp://gateway"})


# -- notification channels -----------------------------------------------------------


@pytest.fixture
def receivers() -> Iterator[dict[str, WebhookSink]]:
    started = {name: WebhookSink().start() for name in ("leadership", "grafana", "pagerduty")}
    yield started
    for sink in started.values():
        sink.stop()


def notifier(receivers: dict[str, WebhookSink], bus: EventBus) -> Notifier:
    grafana, pagerduty = receivers["grafana"], receivers["pagerduty"]
    config = {
        "channels": {
            "leadership": {"kind": "webhook", "url_env": "HOOK", "attempts": 1},
            "grafana": {
                "kind": "grafana",
                "url": f"http://127.0.0.1:{grafana.port}",
                "token_env": "GRAFANA_TOKEN",
                "dashboard_uid": "deploys",
                "tags": ["prod"],
                "attempts": 1,
            },
            "pagerduty": {
                "kind": "pagerduty",
                "routing_key_env": "PD_KEY",
                "attempts": 1,
                "events_url": f"http://127.0.0.1:{pagerduty.port}/v2/enqueue",
            },
        },
        "routes": [
            {"severity": "info", "channels": ["grafana"]},
            {"severity": "sev2", "channels": ["grafana", "pagerduty"]},
            {"severity": "sev1", "channels": ["leadership", "grafana", "pagerduty"]},
        ],
    }
    env = {"HOOK": receivers["leadership"].url, "GRAFANA_TOKEN": "glsa_secret", "PD_KEY": "R0UT1NG"}
    n = Notifier(parse(NotifyConfig, config), env=env, target=TARGET)
    n.attach(bus)
    return n


async def test_monitor_rollback_sends_one_sev1_then_a_resolve(
    receivers: dict[str, WebhookSink],
) -> None:
    bus = EventBus()
    n = notifier(receivers, bus)
    deployment(bus, "bp-7", "rolled_back", rollback=True)
    await n.aclose(10)
    sent = [r.json() for r in receivers["leadership"].received]
    assert [(m["event"], m["severity"], m["status"]) for m in sent] == [
        ("emergency", "sev1", "triggered"),
        ("rollback-finished", "sev1", "resolved"),
    ]
    assert {m["dedup_key"] for m in sent} == {f"portal-ops/{TARGET}/bp-7"}


async def test_pagerduty_trigger_then_resolve_with_one_dedup_key(
    receivers: dict[str, WebhookSink],
) -> None:
    bus = EventBus()
    n = notifier(receivers, bus)
    deployment(bus, "bp-7", "rolled_back", rollback=True)
    await n.aclose(10)
    events = [r.json() for r in receivers["pagerduty"].received]
    actions = [(e["event_action"], e.get("payload", {}).get("severity")) for e in events]
    # the alarm triggers, the successful rollback resolves; the second sev1 (the rollback
    # starting) and the informational "deployment rolled back" are not incidents
    assert actions == [("trigger", "critical"), ("resolve", None)]
    assert {e["dedup_key"] for e in events} == {f"portal-ops/{TARGET}/bp-7"}
    assert {e["routing_key"] for e in events} == {"R0UT1NG"}
    assert events[0]["payload"]["source"] == TARGET


async def test_grafana_annotations_for_start_end_and_rollback(
    receivers: dict[str, WebhookSink],
) -> None:
    bus = EventBus()
    n = notifier(receivers, bus)
    deployment(bus, "bp-8", "succeeded")
    deployment(bus, "bp-9", "rolled_back", rollback=True)
    await n.aclose(10)
    got = receivers["grafana"].received
    assert {r.path for r in got} == {"/api/annotations"}
    assert {r.headers["authorization"] for r in got} == {"Bearer glsa_secret"}
    notes = [r.json() for r in got]
    by_event = {}
    for note in notes:
        assert note["dashboardUID"] == "deploys" and {"portal-ops", "prod", TARGET} <= set(
            note["tags"]
        )
        event = next(t for t in note["tags"] if t.startswith("event:"))
        by_event.setdefault(event, []).append(note)
    assert {"event:pre-deployment", "event:deployment-success", "event:rollback-finished"} <= set(
        by_event
    )
    end = by_event["event:deployment-success"][0]
    assert end["timeEnd"] - end["time"] == 30_000  # a region: the deployment's 30 s


def test_deploy_command_writes_the_metrics_file(tmp_path: Path) -> None:
    from tests.test_ci_mode import Site

    site = Site(tmp_path)
    prom = tmp_path / "textfile" / "portal_ops.prom"
    site.config.write_text(site.config.read_text() + f'\n[metrics]\ntextfile = "{prom}"\n')
    assert site.deploy("--revision", "v1").returncode == 0
    site.fail.touch()
    assert site.deploy("--revision", "v2").returncode == 3
    got = samples(prom)
    for outcome in ("succeeded", "rolled_back"):
        key = (("outcome", outcome), ("target", "ci-portal"))
        assert got[("portal_ops_deployments_total", key)] == 1
    assert (
        got[("portal_ops_rollbacks_total", (("outcome", "succeeded"), ("target", "ci-portal")))]
        == 1
    )


async def test_control_room_deploys_export_the_same_metrics(tmp_path: Path) -> None:
    """The room attaches the deploy metrics to its engine's bus, as the CLI does: a deploy
    run by the room's engine lands in the textfile collector's file."""
    from backend.config import load_config
    from tests.test_ci_mode import Site
    from tui.app import make_room

    site = Site(tmp_path)
    prom = tmp_path / "textfile" / "portal_ops.prom"
    site.config.write_text(site.config.read_text() + f'\n[metrics]\ntextfile = "{prom}"\n')
    room = make_room(load_config(site.config), load_flags=False, live_health=False)
    async with room.run_test(size=(120, 40)):
        result = await room.engine.deploy(revision="v1", skip_validation=True)
        assert result.ok, result.error
    got = samples(prom)
    key = (("outcome", "succeeded"), ("target", "ci-portal"))
    assert got[("portal_ops_deployments_total", key)] == 1
