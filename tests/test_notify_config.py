"""[notify] config, routing by severity, templates and masking: no network needed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from backend.config import ConfigError, parse_config
from backend.notify import EVENTS, Notifier, NotifyConfig, NotifySeverity
from backend.notify.render import Renderer, render_message
from backend.notify.secrets import Masker, display_url
from backend.schema import parse

SLACK_URL = "https://hooks.slack.com/services/T0001/B0001/abcdefSECRETxyz"


def full(notify: dict[str, Any]) -> dict[str, Any]:
    return {
        "portal": {"repository": "git@example.com:portal.git", "deploy_path": "/srv/portal"},
        "hosts": [{"name": "web-1", "address": "10.0.0.1"}],
        "notify": notify,
    }


def problems(notify: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(full(notify), "portal-ops.toml")
    return info.value.render()


ESCALATION = {
    "channels": {
        "deployments": {"kind": "slack", "url_env": "SLACK_WEBHOOK_DEPLOYMENTS"},
        "incidents": {"kind": "slack", "url_env": "SLACK_WEBHOOK_INCIDENTS"},
        "leadership": {
            "kind": "email",
            "host": "smtp.example.com",
            "username": "portal-ops",
            "password_env": "SMTP_PASSWORD",
            "sender": "portal-ops@example.com",
            "to": ["cto@example.com"],
        },
    }
}


def test_a_url_pasted_into_url_env_is_refused_without_echoing_it() -> None:
    text = problems({"channels": {"deployments": {"kind": "slack", "url_env": SLACK_URL}}})
    assert "url_env must be the NAME of an environment variable" in text
    assert "notify.channels.deployments" in text
    assert "SECRET" not in text and "hooks.slack.com" not in text


def test_a_secret_key_in_the_file_is_an_unknown_key() -> None:
    text = problems({"channels": {"d": {"kind": "slack", "url_env": "X", "url": SLACK_URL}}})
    assert "notify.channels.d.url: unknown key" in text
    assert "SECRET" not in text


def test_every_problem_is_named_by_key() -> None:
    text = problems(
        {
            "channels": {
                "mail": {
                    "kind": "email",
                    "host": "h",
                    "sender": "a@b",
                    "to": ["c@d"],
                    "username": "u",
                },
                "pager": {"kind": "carrier-pigeon"},
            },
            "routes": [{"severity": "sev9", "channels": ["mail"]}],
            "events": {"deploy-done": {}},
            "links": {"dashboard": "https://grafana/{deploy}"},
        }
    )
    assert "notify.channels.mail: username and password_env go together" in text
    assert "'carrier-pigeon'" in text and "'slack', 'email', 'webhook', 'apprise'" in text
    assert "notify.routes[0].severity" in text and "'sev1', 'sev2', 'sev3' or 'info'" in text
    assert "unknown events ['deploy-done']; allowed: pre-deployment" in text
    assert "unknown placeholders ['deploy']" in text


def test_routes_must_name_configured_channels() -> None:
    text = problems(
        {
            "channels": {"deployments": {"kind": "slack", "url_env": "A"}},
            "routes": [{"severity": "sev1", "channels": ["incidents"]}],
        }
    )
    assert "routes[0].channels: no such channel ['incidents']" in text
    assert "(channels: deployments)" in text


def test_auth_without_tls_is_refused() -> None:
    channel = {**ESCALATION["channels"]["leadership"], "starttls": False}
    text = problems({"channels": {"leadership": channel}})
    assert "password in clear text" in text


def test_default_routes_follow_the_escalation_path() -> None:
    config = parse_config(full(ESCALATION)).notify
    assert config.route("pre-deployment", NotifySeverity.INFO) == ["deployments"]
    assert config.route("incident", NotifySeverity.SEV3) == ["deployments"]
    assert config.route("deployment-failed", NotifySeverity.SEV2) == ["deployments", "incidents"]
    assert config.route("emergency", NotifySeverity.SEV1) == [
        "deployments",
        "incidents",
        "leadership",
    ]


def test_explicit_routes_event_filters_and_overrides() -> None:
    notify = {
        **ESCALATION,
        "routes": [
            {"severity": "info", "channels": ["deployments"]},
            {"severity": "sev1", "channels": ["incidents", "leadership"]},
            {"severity": "sev1", "channels": ["deployments"], "events": ["rollback"]},
        ],
        "events": {
            "deployment-failed": {"severity": "sev1"},
            "check-failed": {"enabled": False},
            "incident": {"channels": ["incidents"]},
        },
    }
    config = parse_config(full(notify)).notify
    assert config.route("emergency", NotifySeverity.SEV1) == ["incidents", "leadership"]
    assert config.route("rollback", NotifySeverity.SEV1) == [
        "incidents",
        "leadership",
        "deployments",
    ]
    assert config.route("pre-deployment", NotifySeverity.INFO) == ["deployments"]
    assert config.route("deployment-success", NotifySeverity.SEV3) == []
    assert config.severity_for("deployment-failed") == NotifySeverity.SEV1
    assert config.severity_for("rollback") == NotifySeverity.SEV2
    assert config.route("check-failed", NotifySeverity.SEV1) == []
    assert config.route("incident", NotifySeverity.INFO) == ["incidents"]


def test_missing_secrets_are_problems_named_by_key() -> None:
    config = parse(NotifyConfig, ESCALATION)
    notifier = Notifier(config, env={"SLACK_WEBHOOK_DEPLOYMENTS": SLACK_URL})
    found = notifier.problems()
    assert any(
        "notify.channels.incidents.url_env: environment variable SLACK_WEBHOOK_INCIDENTS is not set"
        in p
        for p in found
    )
    assert any("notify.channels.leadership.password_env" in p for p in found)
    assert not any("deployments" in p for p in found)


def test_an_env_var_that_holds_no_url_is_reported_without_its_value() -> None:
    config = parse(NotifyConfig, ESCALATION)
    notifier = Notifier(config, env={"SLACK_WEBHOOK_DEPLOYMENTS": "xoxb-not-a-url-123456"})
    text = " ".join(notifier.problems())
    assert "SLACK_WEBHOOK_DEPLOYMENTS does not hold an http(s) URL" in text
    assert "xoxb-not-a-url-123456" not in text


def test_masker_hides_secrets_and_url_tails() -> None:
    mask = Masker()
    mask.add(SLACK_URL)
    mask.add("hunter2-password")
    text = mask(
        f"POST {SLACK_URL} failed; path /services/T0001/B0001/abcdefSECRETxyz; hunter2-password"
    )
    assert "SECRET" not in text and "hunter2" not in text
    assert display_url(SLACK_URL) == "https://hooks.slack.com/***"


CONTEXT = {
    "deployment_id": "bp-20250801-0200",
    "target": "business-portal",
    "revision": "v2.4.0",
    "release": "20250801020000",
    "operator": {"user": "alice", "host": "bastion", "via": "ssh from 10.0.0.5"},
    "outcome": "failed",
    "hosts": ["web-1", "web-2"],
    "durations": {"validate-pre": 3.2, "backup": 41.0, "deploy": 75.3},
    "reason": "error rate <5%> & rising",
    "message": "Critical issue",
}


@pytest.mark.parametrize("event", list(EVENTS))
def test_every_event_renders_every_part(event: str) -> None:
    message = render_message(
        Renderer(), event, EVENTS[event].severity, CONTEXT, {"runbook": "https://wiki/{event}"}
    )
    assert message.title and message.summary
    for needle in ("bp-20250801-0200", "v2.4.0", "alice@bastion", "web-1, web-2", "deploy: 1m 15s"):
        assert needle in message.text, needle
    assert f"runbook: https://wiki/{event}" in message.text
    assert "<table" in message.html and "bp-20250801-0200" in message.html
    assert "error rate &lt;5%&gt; &amp; rising" in message.html  # escaped in HTML
    assert "error rate &lt;5%&gt; &amp; rising" in message.slack  # and in Slack mrkdwn
    assert len(message.title) < 150


def test_rollback_finished_says_whether_it_worked() -> None:
    ok = render_message(
        Renderer(), "rollback-finished", NotifySeverity.SEV1, {"outcome": "succeeded"}
    )
    bad = render_message(
        Renderer(), "rollback-finished", NotifySeverity.SEV1, {"outcome": "failed"}
    )
    assert "finished" in ok.title and "FAILED" in bad.title


def test_override_directory_wins_and_can_extend_the_default(tmp_path: Path) -> None:
    (tmp_path / "emergency.j2").write_text(
        '{% extends "default/emergency.j2" %}{% block title %}PAGE: {{ message }}{% endblock %}'
    )
    message = render_message(Renderer(tmp_path), "emergency", NotifySeverity.SEV1, CONTEXT)
    assert message.title == "PAGE: Critical issue"
    assert "A critical issue needs the immediate response team now" in message.text
    other = render_message(Renderer(tmp_path), "rollback", NotifySeverity.SEV2, CONTEXT)
    assert other.title.endswith("Rolling back business-portal")


def test_a_broken_override_falls_back_to_the_default(tmp_path: Path) -> None:
    (tmp_path / "rollback.j2").write_text("{% block title %}{{ oops( }}{% endblock %}")
    message = render_message(Renderer(tmp_path), "rollback", NotifySeverity.SEV2, CONTEXT)
    assert message.title.endswith("Rolling back business-portal")
    assert message.template_error and "TemplateSyntaxError" in message.template_error


def test_templates_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    config = parse_config(full({"templates_dir": "tpl"}), str(tmp_path / "portal-ops.toml"))
    assert Notifier.from_config(config).problems() == []
    config = parse_config(full({"templates_dir": "nope"}), str(tmp_path / "portal-ops.toml"))
    assert "notify.templates_dir" in Notifier.from_config(config).problems()[0]


def test_a_link_without_its_value_is_left_out() -> None:
    links = {"dashboard": "https://grafana/d?id={deployment_id}", "runbook": "https://wiki/{event}"}
    message = render_message(Renderer(), "emergency", NotifySeverity.SEV1, {}, links)
    assert message.links == {"runbook": "https://wiki/emergency"}


def test_the_documented_example_is_a_valid_config(tmp_path: Path) -> None:
    doc = (Path(__file__).parent.parent / "docs" / "notify.md").read_text()
    example = re.search(r"```toml\n(.*?)```", doc, re.S)
    assert example is not None
    raw = tomllib.loads(example.group(1))
    (tmp_path / "notify-templates").mkdir()
    config = parse_config(full(raw["notify"]), str(tmp_path / "portal-ops.toml"))
    notify = config.notify
    assert notify.route("emergency", NotifySeverity.SEV1)[-1] == "statuspage"
    assert notify.severity_for("deployment-failed") == NotifySeverity.SEV1
    assert Notifier.from_config(config, env={}).renderer.problems() == []
