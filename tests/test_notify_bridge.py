"""The notifier attached to the engine's event stream: the right message at the right time.

Events are emitted exactly as the engine emits them (see backend/events.py and
backend/engine/run.py), on a bus journaled into a real SQLite journal; receivers are real HTTP
servers on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.events import Event, EventBus, Kind
from backend.journal import Journal
from backend.notify import Notifier, NotifyConfig
from backend.notify.bridge import is_automatic
from backend.notify.sink import Reply, WebhookSink
from backend.schema import parse

DEPLOY = "bp-20250801-0200"


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.db")
    yield j
    j.close()


@pytest.fixture
def sinks() -> Iterator[dict[str, WebhookSink]]:
    started = {name: WebhookSink().start() for name in ("deployments", "incidents", "leadership")}
    yield started
    for sink in started.values():
        sink.stop()


def attached(
    journal: Journal, sinks: dict[str, WebhookSink], timeout: float = 5.0
) -> tuple[EventBus, Notifier]:
    """A bus like the engine's, with the notifier attached using the default escalation."""
    bus = EventBus()
    bus.set_stamper(journal.record)
    channels = {
        name: {
            "kind": "webhook",
            "url_env": f"HOOK_{name.upper()}",
            "timeout": timeout,
            "attempts": 1,
        }
        for name in sinks
    }
    env = {f"HOOK_{name.upper()}": sink.url for name, sink in sinks.items()}
    notifier = Notifier(
        parse(NotifyConfig, {"channels": channels}), env=env, target="business-portal"
    )
    notifier.attach(bus)
    return bus, notifier


@pytest.fixture
def engine_bus(journal: Journal, sinks: dict[str, WebhookSink]) -> tuple[EventBus, Notifier]:
    return attached(journal, sinks)


def emit(
    bus: EventBus, kind: str, run: str = "deploy", phase: str | None = None, **data: Any
) -> None:
    bus.emit(Event(kind=kind, deployment_id=DEPLOY, run=run, phase=phase, data=data))


def started(bus: EventBus, **more: Any) -> None:
    emit(
        bus,
        Kind.DEPLOYMENT_STARTED,
        target="business-portal",
        revision="v2.4.0",
        release="20250801020000",
        operator={"user": "alice", "host": "bastion", "via": ""},
        hosts=["web-1", "web-2"],
        options={},
        dry_run=False,
        **more,
    )


def events_of(sink: WebhookSink) -> list[str]:
    return [r.json()["event"] for r in sink.received]


async def test_a_successful_deployment_notifies_start_and_success(
    engine_bus: tuple[EventBus, Notifier], sinks: dict[str, WebhookSink]
) -> None:
    bus, notifier = engine_bus
    started(bus)
    emit(bus, Kind.PHASE_FINISHED, phase="backup", status="ok", seconds=41.0)
    emit(bus, Kind.PHASE_FINISHED, phase="deploy", status="ok", seconds=75.3)
    emit(bus, Kind.DEPLOYMENT_FINISHED, outcome="succeeded", seconds=130.2, summary={})
    results = await notifier.aclose(10)
    assert all(r.ok for r in results) and len(results) == 2
    assert events_of(sinks["deployments"]) == ["pre-deployment", "deployment-success"]
    assert sinks["incidents"].received == [] and sinks["leadership"].received == []
    success = sinks["deployments"].received[1].json()
    assert success["severity"] == "info"
    assert success["deployment"]["durations"] == {"backup": 41.0, "deploy": 75.3}
    assert success["deployment"]["revision"] == "v2.4.0"
    assert success["deployment"]["operator"] == "alice@bastion"
    assert success["deployment"]["duration_seconds"] == 130.2


@pytest.mark.parametrize("outcome", ["failed", "partial"])
async def test_a_failed_deployment_is_sev2(
    engine_bus: tuple[EventBus, Notifier], sinks: dict[str, WebhookSink], outcome: str
) -> None:
    bus, notifier = engine_bus
    started(bus)
    emit(bus, Kind.DEPLOYMENT_FINISHED, outcome=outcome, seconds=12.0, error="migrate failed")
    await notifier.aclose(10)
    failed = sinks["incidents"].received[-1].json()
    assert (failed["event"], failed["severity"]) == ("deployment-failed", "sev2")
    assert failed["reason"] == "migrate failed" and failed["deployment"]["outcome"] == outcome
    assert events_of(sinks["deployments"]) == ["pre-deployment", "deployment-failed"]
    assert sinks["leadership"].received == []


async def test_an_automatic_rollback_is_sev1_and_its_end_goes_to_the_same_people(
    engine_bus: tuple[EventBus, Notifier], sinks: dict[str, WebhookSink]
) -> None:
    bus, notifier = engine_bus
    started(bus)
    trigger = {"rule": "error_rate", "detail": "5xx 3.2% > 1% for 3 windows"}
    emit(bus, Kind.ROLLBACK_STARTED, run="rollback", reason="error rate", trigger=trigger)
    emit(bus, Kind.ROLLBACK_FINISHED, run="rollback", outcome="succeeded", seconds=48.0)
    await notifier.aclose(10)
    assert events_of(sinks["leadership"]) == ["rollback", "rollback-finished"]
    rollback = sinks["leadership"].received[0].json()
    assert rollback["severity"] == "sev1"
    assert rollback["trigger"] == "error_rate: 5xx 3.2% > 1% for 3 windows"
    assert "An automatic rollback" in rollback["text"]
    finished = sinks["leadership"].received[1].json()
    assert finished["severity"] == "sev1" and "finished" in finished["title"]


async def test_a_manual_rollback_is_sev2_and_a_failed_one_is_sev1(
    engine_bus: tuple[EventBus, Notifier], sinks: dict[str, WebhookSink]
) -> None:
    bus, notifier = engine_bus
    emit(bus, Kind.ROLLBACK_STARTED, run="rollback", reason="Critical issue", trigger="manual")
    emit(bus, Kind.ROLLBACK_FINISHED, run="rollback", outcome="failed", seconds=9.0)
    await notifier.aclose(10)
    assert events_of(sinks["incidents"]) == ["rollback", "rollback-finished"]
    assert sinks["incidents"].received[0].json()["severity"] == "sev2"
    assert events_of(sinks["leadership"]) == ["rollback-finished"]
    assert "FAILED" in sinks["leadership"].received[0].json()["title"]


async def test_only_a_critical_incident_is_an_emergency(
    engine_bus: tuple[EventBus, Notifier], sinks: dict[str, WebhookSink]
) -> None:
    bus, notifier = engine_bus
    emit(bus, Kind.INCIDENT, severity="warning", message="slow check")
    emit(bus, Kind.INCIDENT, severity="error", message="a check failed")
    emit(bus, Kind.INCIDENT, severity="critical", message="site down", evidence={"status": 502})
    await notifier.aclose(10)
    assert events_of(sinks["leadership"]) == ["emergency"]
    emergency = sinks["leadership"].received[0].json()
    assert emergency["severity"] == "sev1" and emergency["message"] == "site down"
    assert "EMERGENCY" in emergency["title"]


async def test_a_dry_run_sends_nothing(
    engine_bus: tuple[EventBus, Notifier], sinks: dict[str, WebhookSink], journal: Journal
) -> None:
    bus, notifier = engine_bus
    started(bus, plan=[])
    bus.emit(Event(kind=Kind.DEPLOYMENT_STARTED, deployment_id="bp-dry", data={"dry_run": True}))
    for kind, data in (
        (Kind.INCIDENT, {"severity": "critical", "message": "x", "dry_run": True}),
        (Kind.ROLLBACK_STARTED, {"trigger": "monitor", "dry_run": True}),
        (Kind.DEPLOYMENT_FINISHED, {"outcome": "failed", "dry_run": True}),
    ):
        bus.emit(Event(kind=kind, deployment_id="bp-dry", data=data))
    await notifier.aclose(10)
    sent = [r.json()["deployment"]["id"] for s in sinks.values() for r in s.received]
    assert sent == [DEPLOY]  # only the real deployment's pre-deployment
    assert not [e for e in journal.events("bp-dry") if e.kind == Kind.NOTIFICATION]


async def test_a_hanging_receiver_does_not_delay_a_rollback(
    sinks: dict[str, WebhookSink], journal: Journal
) -> None:
    # The receivers hang far longer than the delivery timeout; the timeout itself is long
    # enough that no delivery can give up before the assertions below, however loaded.
    bus, notifier = attached(journal, sinks, timeout=2.0)
    for sink in sinks.values():
        sink.replies = [Reply(hang=True)]
    emit(bus, Kind.ROLLBACK_STARTED, run="rollback", trigger={"rule": "health"})
    # emit() returned: the rollback goes on with its phases while deliveries hang.
    emit(bus, Kind.PHASE_STARTED, run="rollback", phase="switch")
    assert notifier.pending == 3
    assert all(not s.received for s in sinks.values())
    results = await notifier.aclose(10)
    assert [r.ok for r in results] == [False, False, False]
    assert all("timed out" in r.detail for r in results)
    incidents = [e for e in journal.events() if e.kind == Kind.INCIDENT]
    assert len(incidents) == 3 and all(e.data["severity"] == "warning" for e in incidents)
    # our own warning incidents are not notifications about notifications
    assert sum(len(s.received) for s in sinks.values()) == 3


def test_what_counts_as_automatic() -> None:
    assert is_automatic({"trigger": {"rule": "error_rate"}})
    assert is_automatic({"trigger": "monitor"})
    assert is_automatic({"automatic": True, "trigger": "manual"})
    assert not is_automatic({"trigger": "manual"})
    assert not is_automatic({})
    assert not is_automatic({"trigger": {"kind": "manual"}})
