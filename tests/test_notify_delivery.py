"""Delivery against real HTTP receivers on loopback: Slack, JSON webhook, 429, hangs.

Every test journals into a real SQLite journal and reads the attempts back from it.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.events import EventBus, Kind
from backend.journal import Journal
from backend.notify import Notifier, NotifyConfig
from backend.notify.sink import Reply, WebhookSink
from backend.schema import parse

SECRET_PATH = "/T0001/B0001/abcdefSECRETxyz"
HMAC_KEY = "hmac-key-5ecret-value"
TOKEN = "Bearer tok-5ecret-value"

CONTEXT = {
    "deployment_id": "bp-20250801-0200",
    "target": "business-portal",
    "revision": "v2.4.0",
    "operator": "alice@bastion",
    "hosts": ["web-1", "web-2"],
    "durations": {"deploy": 75.3},
    "message": "Critical issue",
}


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.db")
    yield j
    j.close()


@pytest.fixture
def bus(journal: Journal) -> EventBus:
    b = EventBus()
    b.set_stamper(journal.record)
    return b


@pytest.fixture
def sinks() -> Iterator[dict[str, WebhookSink]]:
    started = {name: WebhookSink().start() for name in ("deployments", "incidents", "hook")}
    yield started
    for sink in started.values():
        sink.stop()


def make(
    sinks: dict[str, WebhookSink],
    bus: EventBus,
    overrides: dict[str, dict[str, Any]] | None = None,
    **notify: Any,
) -> tuple[Notifier, dict[str, str]]:
    """A notifier with three channels on the sinks; ``overrides`` change channel keys."""
    channels = {
        "deployments": {"kind": "slack", "url_env": "SLACK_D", "min_interval": 0},
        "incidents": {"kind": "slack", "url_env": "SLACK_I", "min_interval": 0},
        "hook": {
            "kind": "webhook",
            "url_env": "HOOK_URL",
            "secret_env": "HOOK_KEY",
            "headers": {"X-Team": "web"},
            "headers_env": {"Authorization": "HOOK_TOKEN"},
        },
    }
    for name, keys in (overrides or {}).items():
        channels[name].update(keys)
    config = {
        "channels": channels,
        "routes": [
            {"severity": "info", "channels": ["deployments"]},
            {"severity": "sev2", "channels": ["deployments", "incidents"]},
            {"severity": "sev1", "channels": ["incidents", "hook"]},
        ],
        "links": {"dashboard": "https://grafana.example.com/d/deploys?var-id={deployment_id}"},
        "backoff": 0.05,
        "timeout": 5,
        **notify,
    }
    env = {
        "SLACK_D": sinks["deployments"].url + SECRET_PATH,
        "SLACK_I": sinks["incidents"].url + SECRET_PATH + "2",
        "HOOK_URL": sinks["hook"].url + "?token=query-5ecret",
        "HOOK_KEY": HMAC_KEY,
        "HOOK_TOKEN": TOKEN,
    }
    return Notifier(parse(NotifyConfig, config), bus, env=env), env


def journal_text(journal: Journal) -> str:
    return json.dumps([e.to_dict() for e in journal.events()])


def attempts(journal: Journal) -> list[dict[str, Any]]:
    return [e.data for e in journal.events() if e.kind == Kind.NOTIFICATION]


async def test_slack_receives_block_kit_with_a_text_fallback(
    sinks: dict[str, WebhookSink], bus: EventBus, journal: Journal
) -> None:
    notifier, env = make(sinks, bus)
    notifier.send("deployment-success", {**CONTEXT, "outcome": "succeeded"})
    results = await notifier.aclose(10)
    assert [(r.channel, r.ok, r.attempts) for r in results] == [("deployments", True, 1)]
    (request,) = sinks["deployments"].received
    assert request.path == "/hook" + SECRET_PATH
    body = request.json()
    assert body["text"].startswith("✅ Deployed business-portal v2.4.0")
    assert "Deployment: bp-20250801-0200" in body["text"]  # Mattermost shows only this
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds[0] == "header" and "section" in kinds and kinds[-1] == "context"
    assert body["blocks"][0]["text"] == {
        "type": "plain_text",
        "text": "✅ Deployed business-portal v2.4.0",
        "emoji": True,
    }
    fields = next(b["fields"] for b in body["blocks"] if "fields" in b)
    assert {"type": "mrkdwn", "text": "*Deployment*\nbp-20250801-0200"} in fields
    assert len(fields) <= 10
    assert any(
        "<https://grafana.example.com/d/deploys?var-id=bp-20250801-0200|dashboard>"
        in b.get("text", {}).get("text", "")
        for b in body["blocks"]
    )
    assert sinks["incidents"].received == [] and sinks["hook"].received == []
    (attempt,) = attempts(journal)
    assert attempt["ok"] and attempt["final"] and attempt["channel"] == "deployments"
    assert journal.events()[0].run == "notify"
    assert journal.events()[0].deployment_id == "bp-20250801-0200"
    assert env["SLACK_D"] not in journal_text(journal) and "SECRET" not in journal_text(journal)


async def test_generic_webhook_gets_the_documented_payload_with_a_valid_hmac(
    sinks: dict[str, WebhookSink], bus: EventBus, journal: Journal
) -> None:
    notifier, _ = make(sinks, bus)
    notifier.send("emergency", CONTEXT, channels=["hook"])
    (result,) = await notifier.aclose(10)
    assert result.ok, result.detail
    (request,) = sinks["hook"].received
    stamp = request.headers["x-portal-ops-timestamp"]
    expected = hmac.new(HMAC_KEY.encode(), stamp.encode() + b"." + request.body, hashlib.sha256)
    assert request.headers["x-portal-ops-signature"] == "sha256=" + expected.hexdigest()
    assert request.headers["authorization"] == TOKEN
    assert request.headers["x-team"] == "web"
    assert request.headers["x-portal-ops-event"] == "emergency"
    body = request.json()
    assert body["schema"] == "portal-ops.notification/v1"
    assert body["id"] == request.headers["x-portal-ops-delivery"] == result.delivery
    assert body["event"] == "emergency" and body["severity"] == "sev1"
    assert body["deployment"]["id"] == "bp-20250801-0200"
    assert body["deployment"]["hosts"] == ["web-1", "web-2"]
    assert body["deployment"]["durations"] == {"deploy": 75.3}
    assert body["message"] == "Critical issue"
    assert body["links"]["dashboard"].endswith("var-id=bp-20250801-0200")
    text = journal_text(journal)
    for secret in (HMAC_KEY, TOKEN, "query-5ecret", request.headers["x-portal-ops-signature"]):
        assert secret not in text


async def test_429_with_retry_after_is_honoured_and_sent_exactly_once_more(
    sinks: dict[str, WebhookSink], bus: EventBus, journal: Journal
) -> None:
    sinks["deployments"].replies = [Reply(429, {"Retry-After": "1"}, "rate_limited"), Reply(200)]
    notifier, _ = make(sinks, bus)
    notifier.send("pre-deployment", CONTEXT)
    (result,) = await notifier.aclose(10)
    assert result.ok and result.attempts == 2
    first, second = sinks["deployments"].received
    assert first.body == second.body  # the same message, once more
    assert second.at - first.at >= 0.9  # waited for Retry-After, not the 0.05 s backoff
    one, two = attempts(journal)
    assert (one["status"], one["ok"], one["final"], one["retry_in"]) == (429, False, False, 1.0)
    assert (two["status"], two["ok"], two["final"]) == (200, True, True)
    assert not [e for e in journal.events() if e.kind == Kind.INCIDENT]


async def test_a_hanging_receiver_never_delays_the_caller(
    sinks: dict[str, WebhookSink], bus: EventBus, journal: Journal
) -> None:
    sinks["incidents"].replies = [Reply(hang=True), Reply(hang=True)]
    notifier, _ = make(sinks, bus, {"incidents": {"timeout": 0.3, "attempts": 2}})
    dispatch = notifier.send("deployment-failed", CONTEXT)  # sev2: deployments + incidents
    # send() has returned: nothing was awaited, the receivers have not even been called.
    assert dispatch.channels == ["deployments", "incidents"]
    assert not dispatch.done()
    assert sinks["incidents"].received == []
    results = {r.channel: r for r in await notifier.aclose(10)}
    assert results["deployments"].ok
    hung = results["incidents"]
    assert not hung.ok and hung.attempts == 2 and "timed out" in hung.detail
    assert len(sinks["incidents"].received) == 2
    failed = [a for a in attempts(journal) if a["channel"] == "incidents"]
    assert [a["ok"] for a in failed] == [False, False] and failed[-1]["final"]
    (incident,) = [e for e in journal.events() if e.kind == Kind.INCIDENT]
    assert incident.data["severity"] == "warning"
    assert (
        "deployment-failed to incidents (slack) failed after 2 attempt(s)"
        in incident.data["message"]
    )
    assert "SECRET" not in journal_text(journal)


async def test_drain_gives_up_on_what_is_still_pending_and_journals_it(
    sinks: dict[str, WebhookSink], bus: EventBus, journal: Journal
) -> None:
    sinks["incidents"].replies = [Reply(hang=True)]
    notifier, _ = make(sinks, bus, timeout=30)
    notifier.send("emergency", CONTEXT, channels=["incidents"])
    (result,) = await notifier.aclose(0.3)
    assert not result.ok and "still pending" in result.detail
    assert attempts(journal)[-1]["final"] is True
    assert notifier.pending == 0


async def test_severity_routing_sev1_to_incidents_info_only_to_deployments(
    sinks: dict[str, WebhookSink], bus: EventBus
) -> None:
    notifier, _ = make(sinks, bus)
    notifier.send("emergency", CONTEXT)  # sev1 by default
    await notifier.drain(10)
    assert len(sinks["incidents"].received) == 1 and len(sinks["hook"].received) == 1
    assert sinks["deployments"].received == []
    notifier.send("pre-deployment", CONTEXT)  # info
    notifier.send("incident", CONTEXT, "info")  # severity given by the caller
    await notifier.aclose(10)
    assert len(sinks["deployments"].received) == 2
    assert len(sinks["incidents"].received) == 1 and len(sinks["hook"].received) == 1


async def test_client_errors_are_not_retried(
    sinks: dict[str, WebhookSink], bus: EventBus, journal: Journal
) -> None:
    sinks["deployments"].replies = [Reply(404, body="no_service")]
    notifier, _ = make(sinks, bus)
    notifier.send("pre-deployment", CONTEXT)
    (result,) = await notifier.aclose(10)
    assert not result.ok and result.attempts == 1 and result.detail == "HTTP 404: no_service"
    assert len(sinks["deployments"].received) == 1


async def test_server_errors_are_retried_with_backoff(
    sinks: dict[str, WebhookSink], bus: EventBus, journal: Journal
) -> None:
    sinks["deployments"].replies = [Reply(503), Reply(502)]
    notifier, _ = make(sinks, bus)
    notifier.send("pre-deployment", CONTEXT)
    (result,) = await notifier.aclose(10)
    assert result.ok and result.attempts == 3
    assert [a["retry_in"] for a in attempts(journal)] == [0.05, 0.1, None]


async def test_a_missing_secret_fails_that_channel_only_and_is_journaled(
    sinks: dict[str, WebhookSink], bus: EventBus, journal: Journal
) -> None:
    notifier, env = make(sinks, bus)
    env.pop("SLACK_I")
    config = notifier.config
    notifier = Notifier(config, bus, env=env)
    notifier.send("deployment-failed", CONTEXT)
    results = {r.channel: r for r in await notifier.aclose(10)}
    assert results["deployments"].ok
    assert not results["incidents"].ok and results["incidents"].attempts == 1
    assert "SLACK_I is not set" in results["incidents"].detail
    assert sinks["incidents"].received == []
    assert any(e.kind == Kind.INCIDENT for e in journal.events())


async def test_send_never_raises(
    sinks: dict[str, WebhookSink], bus: EventBus, journal: Journal
) -> None:
    notifier, _ = make(sinks, bus)
    dispatch = notifier.send("no-such-event", CONTEXT)
    assert dispatch.tasks == [] and "unknown notification event" in (dispatch.problem or "")
    dispatch = notifier.send("emergency", CONTEXT, channels=["nope"])
    assert dispatch.tasks == [] and "no such channel" in (dispatch.problem or "")
    dispatch = notifier.send("emergency", CONTEXT, severity="sev9")
    assert dispatch.tasks == []
    incidents = [e for e in journal.events() if e.kind == Kind.INCIDENT]
    assert len(incidents) == 3
    assert await notifier.aclose(1) == []


def test_send_without_an_event_loop_is_an_incident_not_an_exception(
    sinks: dict[str, WebhookSink], bus: EventBus, journal: Journal
) -> None:
    notifier, _ = make(sinks, bus)
    dispatch = notifier.send("emergency", CONTEXT)
    assert dispatch.tasks == [] and dispatch.problem
    assert [e.kind for e in journal.events()] == [Kind.INCIDENT]


async def test_disabled_notifications_send_nothing(
    sinks: dict[str, WebhookSink], bus: EventBus, journal: Journal
) -> None:
    notifier, _ = make(sinks, bus, enabled=False)
    dispatch = notifier.send("emergency", CONTEXT)
    assert dispatch.tasks == []
    await notifier.aclose(1)
    assert all(not s.received for s in sinks.values()) and journal.events() == []


async def test_slack_messages_on_one_webhook_are_spaced(
    sinks: dict[str, WebhookSink], bus: EventBus
) -> None:
    notifier, _ = make(sinks, bus, {"deployments": {"min_interval": 0.3}})
    for _ in range(3):
        notifier.send("pre-deployment", CONTEXT)
    results = await notifier.aclose(10)
    assert all(r.ok for r in results)
    times = [r.at for r in sinks["deployments"].received]
    assert all(b - a >= 0.25 for a, b in itertools.pairwise(times))
