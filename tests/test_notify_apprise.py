"""The optional Apprise channel, against a real HTTP receiver (Apprise's ``json://``).

Skipped when Apprise is not installed (it is an optional extra, not a core dependency).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.events import EventBus, Kind
from backend.journal import Journal
from backend.notify import Notifier, NotifyConfig
from backend.notify.sink import WebhookSink
from backend.schema import parse

pytest.importorskip("apprise")


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with WebhookSink() as started:
        yield started


async def test_apprise_delivers_and_its_urls_stay_secret(sink: WebhookSink, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    bus = EventBus()
    bus.set_stamper(journal.record)
    url = f"json://127.0.0.1:{sink.port}/hook/apprise-5ecret-token"
    config = parse(
        NotifyConfig,
        {"channels": {"teams": {"kind": "apprise", "urls_env": "APPRISE_URLS", "attempts": 1}}},
    )
    notifier = Notifier(config, bus, env={"APPRISE_URLS": url}, target="business-portal")
    notifier.send("deployment-failed", {"deployment_id": "bp-1", "reason": "x"}, channels=["teams"])
    (result,) = await notifier.aclose(15)
    assert result.ok, result.detail
    (request,) = sink.received
    body = request.json()
    assert body["title"].endswith("Deployment of business-portal failed")
    assert body["type"] == "failure" and "Deployment bp-1" in body["message"]
    text = json.dumps([e.to_dict() for e in journal.events()])
    assert "5ecret" not in text
    assert [e.kind for e in journal.events()] == [Kind.NOTIFICATION]
    journal.close()
