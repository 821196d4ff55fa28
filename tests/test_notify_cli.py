"""``portal-ops notify``: the seed's send-deployment-notification.sh, end to end.

Real config file, real journal in a temp state dir, real HTTP receivers on loopback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from backend.events import Event, Kind
from backend.journal import Journal
from backend.notify.sink import Reply, WebhookSink
from tui.cli import cli

SECRET_PATH = "/T0001/B0001/cliSECRETpath"
HMAC_KEY = "cli-hmac-5ecret"


@pytest.fixture
def sinks() -> Iterator[dict[str, WebhookSink]]:
    started = {name: WebhookSink().start() for name in ("deployments", "incidents", "leadership")}
    yield started
    for sink in started.values():
        sink.stop()


@pytest.fixture
def setup(tmp_path: Path, sinks: dict[str, WebhookSink]) -> tuple[Path, dict[str, str]]:
    """portal-ops.toml with the escalation channels, and the environment with the secrets."""
    config = tmp_path / "portal-ops.toml"
    config.write_text(
        f"""
[portal]
name = "business-portal"
repository = "git@example.com:portal.git"
revision = "v2.4.0"
deploy_path = "/srv/portal"

[[hosts]]
name = "web-1"
address = "10.0.0.1"

[state]
dir = "{tmp_path / "state"}"

[notify]
backoff = 0.05
attempts = 2
timeout = 5

[notify.links]
runbook = "https://wiki.example.com/runbooks/{{event}}"

[notify.channels.deployments]
kind = "slack"
url_env = "SLACK_WEBHOOK_DEPLOYMENTS"
min_interval = 0

[notify.channels.incidents]
kind = "slack"
url_env = "SLACK_WEBHOOK_INCIDENTS"
min_interval = 0

[notify.channels.leadership]
kind = "webhook"
url_env = "LEADERSHIP_HOOK"
secret_env = "LEADERSHIP_HOOK_SECRET"
"""
    )
    env = {
        "SLACK_WEBHOOK_DEPLOYMENTS": sinks["deployments"].url + SECRET_PATH,
        "SLACK_WEBHOOK_INCIDENTS": sinks["incidents"].url + SECRET_PATH,
        "LEADERSHIP_HOOK": sinks["leadership"].url + "/leaders-5ecret",
        "LEADERSHIP_HOOK_SECRET": HMAC_KEY,
        "PORTAL_OPS_OPERATOR": "alice",
    }
    return config, env


def run(
    setup: tuple[Path, dict[str, str]], *args: str, env: dict[str, str] | None = None
) -> Result:
    config, base = setup
    return CliRunner().invoke(
        cli, ["notify", *args, "--config", str(config)], env={**base, **(env or {})}
    )


def assert_no_secret(result: Result, setup: tuple[Path, dict[str, str]]) -> None:
    text = result.output + (result.stderr or "")
    for key in ("SLACK_WEBHOOK_DEPLOYMENTS", "SLACK_WEBHOOK_INCIDENTS", "LEADERSHIP_HOOK"):
        assert setup[1][key] not in text
    for secret in ("SECRET", "5ecret", HMAC_KEY):
        assert secret not in text


def journal_events(tmp_path: Path) -> list[Event]:
    path = tmp_path / "state" / "journal.db"
    if not path.exists():
        return []
    j = Journal(path)
    try:
        return j.events()
    finally:
        j.close()


def test_emergency_reaches_incidents_and_leadership(
    setup: tuple[Path, dict[str, str]], sinks: dict[str, WebhookSink], tmp_path: Path
) -> None:
    result = run(setup, "emergency", "Critical issue")
    assert result.exit_code == 0, result.output
    assert "delivered to 3 of 3 channel(s)" in result.output
    assert_no_secret(result, setup)
    slack = sinks["incidents"].received[0].json()
    assert slack["blocks"][0]["text"]["text"] == "🚨 EMERGENCY on business-portal: Critical issue"
    assert "Operator: alice@" in slack["text"]
    assert "runbook: https://wiki.example.com/runbooks/emergency" in slack["text"]
    assert sinks["leadership"].received[0].headers["x-portal-ops-signature"].startswith("sha256=")
    events = journal_events(tmp_path)
    attempts = [e for e in events if e.kind == Kind.NOTIFICATION]
    assert len(attempts) == 3 and all(e.run == "notify" and e.data["ok"] for e in attempts)
    journaled = json.dumps([e.to_dict() for e in events])
    assert "SECRET" not in journaled and "5ecret" not in journaled


def test_info_goes_only_to_deployments_and_json_reports_it(
    setup: tuple[Path, dict[str, str]], sinks: dict[str, WebhookSink]
) -> None:
    result = run(setup, "pre-deployment", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["severity"] == "info" and report["channels"] == ["deployments"]
    (delivery,) = report["deliveries"]
    assert delivery["ok"] and delivery["attempts"] == 1 and delivery["kind"] == "slack"
    assert len(sinks["deployments"].received) == 1
    assert not sinks["incidents"].received and not sinks["leadership"].received
    assert_no_secret(result, setup)


def test_dry_run_renders_every_routed_message_and_sends_nothing(
    setup: tuple[Path, dict[str, str]], sinks: dict[str, WebhookSink], tmp_path: Path
) -> None:
    result = run(setup, "deployment-failed", "migrations failed", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "notify deployment-failed (sev2) -> deployments, incidents  [dry run: nothing sent]" in (
        result.output
    )
    assert "== deployments (slack) $SLACK_WEBHOOK_DEPLOYMENTS -> http://127.0.0.1:" in result.output
    assert "[+ Block Kit: header, section, section" in result.output
    assert "Message: migrations failed" in result.output
    assert all(not s.received for s in sinks.values())
    assert journal_events(tmp_path) == []
    assert_no_secret(result, setup)

    result = run(setup, "emergency", "Critical issue", "--dry-run", "--json")
    report = json.loads(result.stdout)
    assert report["dry_run"] and report["channels"] == ["deployments", "incidents", "leadership"]
    hook = report["previews"][2]
    assert hook["rendered"]["json"]["schema"] == "portal-ops.notification/v1"
    assert "X-Portal-Ops-Signature" in hook["rendered"]["headers"]
    assert all(not s.received for s in sinks.values())
    assert_no_secret(result, setup)


def test_dry_run_works_without_secrets_and_says_what_would_fail(
    setup: tuple[Path, dict[str, str]], sinks: dict[str, WebhookSink]
) -> None:
    result = run(setup, "rollback", "--dry-run", env={"SLACK_WEBHOOK_INCIDENTS": ""})
    assert result.exit_code == 0, result.output
    assert "[would fail: notify.channels.incidents.url_env: environment variable" in result.output
    assert all(not s.received for s in sinks.values())


def test_a_failed_delivery_exits_1(
    setup: tuple[Path, dict[str, str]], sinks: dict[str, WebhookSink], tmp_path: Path
) -> None:
    sinks["incidents"].replies = [Reply(500), Reply(500)]
    result = run(setup, "deployment-failed")
    assert result.exit_code == 1, result.output
    assert "FAIL incidents (slack): HTTP 500" in result.output
    assert "ok   deployments (slack): HTTP 200 [1 attempt]" in result.output
    assert "delivered to 1 of 2 channel(s)" in result.output
    incidents = [e for e in journal_events(tmp_path) if e.kind == Kind.INCIDENT]
    assert len(incidents) == 1 and incidents[0].data["severity"] == "warning"
    assert_no_secret(result, setup)


def test_unknown_event_lists_the_allowed_ones(setup: tuple[Path, dict[str, str]]) -> None:
    result = run(setup, "deploy-done")
    assert result.exit_code == 2
    assert "unknown event 'deploy-done'; allowed: pre-deployment, deployment-success," in (
        result.stderr
    )


def test_a_missing_secret_exits_2_and_sends_nothing(
    setup: tuple[Path, dict[str, str]], sinks: dict[str, WebhookSink], tmp_path: Path
) -> None:
    result = run(setup, "emergency", "Critical issue", env={"LEADERSHIP_HOOK_SECRET": ""})
    assert result.exit_code == 2
    assert "cannot send; nothing was sent" in result.stderr
    assert "notify.channels.leadership.secret_env: environment variable LEADERSHIP_HOOK_SECRET" in (
        result.stderr
    )
    assert all(not s.received for s in sinks.values())
    assert not [e for e in journal_events(tmp_path) if e.kind == Kind.NOTIFICATION]


def test_severity_override_and_channel_selection(
    setup: tuple[Path, dict[str, str]], sinks: dict[str, WebhookSink]
) -> None:
    result = run(setup, "incident", "disk 95% full", "--severity", "sev2")
    assert result.exit_code == 0, result.output
    assert len(sinks["deployments"].received) == len(sinks["incidents"].received) == 1
    result = run(setup, "emergency", "test page", "--channel", "leadership")
    assert result.exit_code == 0 and len(sinks["leadership"].received) == 1
    assert len(sinks["incidents"].received) == 1
    result = run(setup, "emergency", "--channel", "pager")
    assert result.exit_code == 2 and "no such channel ['pager']" in result.stderr
    result = run(setup, "emergency", "--severity", "sev0")
    assert result.exit_code == 2 and "'sev1', 'sev2', 'sev3', 'info'" in result.stderr


def test_deployment_id_fills_in_the_facts_from_the_journal(
    setup: tuple[Path, dict[str, str]], sinks: dict[str, WebhookSink], tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "state" / "journal.db")
    deploy = "bp-20250801-0200"
    journal.record(
        Event(
            kind=Kind.DEPLOYMENT_STARTED,
            deployment_id=deploy,
            data={
                "target": "business-portal",
                "revision": "abc1234",
                "release": "20250801020000",
                "operator": {"user": "bob", "host": "bastion", "via": ""},
                "hosts": ["web-1", "web-2"],
            },
        )
    )
    journal.record(
        Event(
            kind=Kind.PHASE_FINISHED, deployment_id=deploy, phase="deploy", data={"seconds": 75.3}
        )
    )
    journal.finish_deployment(deploy, "succeeded", {})
    journal.close()
    result = run(setup, "deployment-success", "--deployment-id", deploy)
    assert result.exit_code == 0, result.output
    text = sinks["deployments"].received[0].json()["text"]
    for needle in ("Deployed business-portal abc1234", "Operator: bob@bastion", "deploy: 1m 15s"):
        assert needle in text
    assert "Hosts: web-1, web-2" in text
    result = run(setup, "deployment-success", "--deployment-id", "bp-nope")
    assert result.exit_code == 2 and "no deployment 'bp-nope' in the journal" in result.stderr


def test_config_problems_exit_2(setup: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    config, _ = setup
    config.write_text(config.read_text().replace("backoff = 0.05", "backof = 0.05"))
    result = run(setup, "emergency")
    assert result.exit_code == 2 and "notify.backof: unknown key" in result.stderr


def test_nothing_routed_is_a_config_problem(tmp_path: Path) -> None:
    config = tmp_path / "portal-ops.toml"
    config.write_text(
        '[portal]\nrepository = "r"\ndeploy_path = "/srv"\n[[hosts]]\nname = "a"\naddress = "b"\n'
    )
    result = CliRunner().invoke(cli, ["notify", "emergency", "--config", str(config)])
    assert result.exit_code == 2 and "no channel is routed for emergency at sev1" in result.stderr
