"""Scoring, the decision, the report schema, config validation and the output parsers."""

from __future__ import annotations

import json

import pytest

from backend.checks.config import CHECK_IDS, ValidationConfig
from backend.checks.model import CheckResult, Status, decide, score
from backend.checks.parsers import (
    count_log_errors,
    line_time,
    manifest_paths,
    parse_audit,
    parse_coverage,
    parse_df,
    parse_load,
    parse_meminfo,
)
from backend.checks.report import ValidationReport, spatie_result
from backend.checks.runner import specs_for
from backend.config import ConfigError, parse_config
from backend.schema import parse


def row(
    check_id: str, status: str, weight: float = 10, critical: bool = False, host: str | None = None
) -> CheckResult:
    return CheckResult(
        check_id,
        f"title {check_id}",
        "test",
        host,
        Status(status),
        f"msg {check_id}",
        weight=weight,
        critical=critical,
    )


def test_fifteen_pre_and_eighteen_post_checks() -> None:
    pre, post = specs_for("pre"), specs_for("post")
    assert [s.id for s in pre] == [f"P{n:02d}" for n in range(1, 16)]
    assert [s.id for s in post] == [f"Q{n:02d}" for n in range(1, 19)]
    assert len(set(CHECK_IDS)) == 33
    assert all(s.title and s.category and s.weight > 0 for s in pre + post)


def test_score_weights_warn_half_and_leaves_out_skipped() -> None:
    rows = [
        row("P01", "pass", 10),
        row("P02", "warn", 10),
        row("P03", "fail", 10),
        row("P04", "skipped", 50),
        row("P05", "error", 20),
    ]
    # earned 10 + 5 + 0 + 0 of 50 (skipped left out; error scored as a failure)
    assert score(rows) == 30.0


def test_worst_host_decides_a_per_host_check() -> None:
    rows = [
        row("P06", "pass", 8, host="web-1"),
        row("P06", "fail", 8, host="web-2"),
        row("P07", "pass", 8, host="web-1"),
        row("P07", "pass", 8, host="web-2"),
    ]
    assert score(rows) == 50.0


def test_critical_failure_is_no_go_whatever_the_score() -> None:
    rows = [row(f"P{n:02d}", "pass", 10) for n in range(1, 15)]
    rows.append(row("P15", "fail", 1, critical=True))
    total, decision, reasons = decide(rows, pass_score=90)
    assert total > 99
    assert decision == "no-go"
    assert reasons[0].startswith("critical check P15")


def test_critical_error_is_no_go_and_warn_on_critical_is_not() -> None:
    errored = [row("P01", "pass", 90), row("P02", "error", 1, critical=True)]
    assert decide(errored, 50)[1] == "no-go"
    warned = [row("P01", "pass", 90), row("P02", "warn", 1, critical=True)]
    total, decision, reasons = decide(warned, 90)
    assert decision == "go" and total == 99.5
    assert any("P02" in r and "warn" in r for r in reasons)


def test_low_score_without_critical_failure_is_no_go() -> None:
    rows = [row("P01", "pass", 10), row("P03", "fail", 10), row("P04", "fail", 10)]
    total, decision, reasons = decide(rows, 90)
    assert (total, decision) == (33.3, "no-go")
    assert "below the pass score 90" in reasons[0]


def test_nothing_scorable_is_no_go() -> None:
    total, decision, reasons = decide([row("P03", "skipped")], 90)
    assert (total, decision) == (0.0, "no-go")
    assert "no check could be scored" in reasons[0]


def test_report_schema_and_spatie_view() -> None:
    checks = [
        row("P06", "pass", 8, host="web-1"),
        row("P13", "error", 7, critical=True),
        row("P14", "warn"),
        row("P03", "fail"),
        row("P04", "skipped"),
    ]
    checks[0].value, checks[0].unit = 42.0, "% free"
    report = ValidationReport("pre", "bp-1", 1000.0, 1002.5, 12.0, "no-go", ["x"], checks)
    data = json.loads(json.dumps(report.to_dict()))
    for key in (
        "deployment_id",
        "phase",
        "started_at",
        "finished_at",
        "score",
        "decision",
        "reasons",
        "checks",
        "finishedAt",
        "checkResults",
    ):
        assert key in data
    assert data["started_at"] == "1970-01-01T00:16:40Z" and data["finishedAt"] == 1002
    first = data["checks"][0]
    assert set(first) >= {
        "id",
        "title",
        "host",
        "value",
        "unit",
        "threshold",
        "status",
        "weight",
        "critical",
        "duration_ms",
        "message",
    }
    assert [r["status"] for r in data["checkResults"]] == [
        "ok",
        "crashed",
        "warning",
        "failed",
        "skipped",
    ]
    spatie = spatie_result(checks[0])
    assert spatie["name"] == "P06.web-1" and spatie["shortSummary"] == "42.0 % free"
    assert spatie["notificationMessage"] == ""
    assert set(spatie) == {"name", "label", "notificationMessage", "shortSummary", "status", "meta"}
    again = ValidationReport.from_dict(data)
    assert again.to_dict()["checks"] == data["checks"]


def _raw(validation: dict) -> dict:
    return {
        "portal": {"repository": "r", "deploy_path": "/srv/p"},
        "hosts": [{"name": "w", "address": "h"}],
        "validation": validation,
    }


@pytest.mark.parametrize(
    ("validation", "expected"),
    [
        ({"disabled": {"P03": ""}}, "needs a reason"),
        ({"weights": {"P99": 3}}, "unknown check id"),
        ({"critical": {"X01": True}}, "unknown check id"),
        ({"disk_free_warn_below": 5, "disk_free_fail_below": 10}, "must not be above"),
        ({"tls_target": "example.org"}, "host:port"),
        ({"app_log": "logs/*/x.log"}, "file name may hold"),
        ({"api_probes": [{"name": "x", "url": "https://a", "key_env": "bad name"}]}, "variable"),
        ({"no_such_key": 1}, "unknown key"),
        ({"database": {"command": "true", "expect": "("}}, "regular expression"),
    ],
)
def test_bad_validation_config_names_the_key(validation: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_raw(validation), "portal-ops.toml")
    assert expected in info.value.render()
    assert "validation" in info.value.render()


def test_commands_may_be_strings_or_tables() -> None:
    vc = parse(
        ValidationConfig,
        {
            "database": "php artisan db:monitor",
            "queue_command": {"command": "x", "on": "all"},
            "disabled": {"P03": "no PHPStan here"},
            "smoke_pages": ["/", {"path": "/login"}],
        },
    )
    assert vc.database is not None and vc.database.command == "php artisan db:monitor"
    assert vc.queue_command is not None and vc.queue_command.on == "all"
    assert [p.path for p in vc.smoke_pages] == ["/", "/login"]


def test_parse_df_meminfo_load() -> None:
    df = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/x 1000 900 100 90% /srv/my data\n"
    usage = parse_df(df)
    assert (usage.free_percent, usage.mount) == (10.0, "/srv/my data")
    used, avail, total = parse_meminfo("MemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable: 250 kB\n")
    assert (used, avail, total) == (75.0, 250, 1000)
    assert parse_load("3.00 2.00 1.00 1/100 42\n4\n") == (2.0, 4)
    with pytest.raises(ValueError):
        parse_df("df: /nope: No such file\n")


def test_parse_coverage_formats() -> None:
    clover = (
        '<?xml version="1.0"?><coverage generated="1"><project timestamp="1"><file name="a">'
        '<metrics statements="10" coveredstatements="1"/></file><metrics files="1" '
        'statements="200" coveredstatements="130" elements="300" coveredelements="150"/>'
        "</project></coverage>"
    )
    assert parse_coverage(clover) == (65.0, "clover")
    assert parse_coverage('<coverage line-rate="0.4213" branch-rate="0"></coverage>') == (
        42.13,
        "cobertura",
    )
    assert parse_coverage("61.5%\n") == (61.5, "text")
    assert parse_coverage("Summary:\n  Classes: 10%\n  Lines:   63.20% (632/1000)\n")[0] == 63.2
    assert parse_coverage("Name Stmts Miss Cover\nTOTAL 100 20 80%\n")[0] == 80.0
    for bad in ("", "<html/>", "no numbers here"):
        with pytest.raises(ValueError):
            parse_coverage(bad)


def test_parse_audit_formats() -> None:
    composer = {
        "advisories": {
            "symfony/http": [
                {
                    "advisoryId": "PKSA-1",
                    "packageName": "symfony/http",
                    "cve": "CVE-1",
                    "title": "t",
                    "severity": "critical",
                }
            ],
            "x/y": {"0": {"advisoryId": "PKSA-2", "severity": None}},
        }
    }
    found = parse_audit(json.dumps(composer))
    assert [(a.package, a.id, a.severity) for a in found] == [
        ("symfony/http", "CVE-1", "critical"),
        ("x/y", "PKSA-2", None),
    ]
    pip = {"dependencies": [{"name": "jinja2", "version": "2.0", "vulns": [{"id": "PYSEC-1"}]}]}
    assert parse_audit(json.dumps(pip))[0].id == "PYSEC-1"
    npm = {"vulnerabilities": {"lodash": {"severity": "high"}}}
    assert parse_audit("npm notice\n" + json.dumps(npm))[0].severity == "high"
    assert parse_audit('{"advisories": []}') == []
    with pytest.raises(ValueError):
        parse_audit("Found 1 security vulnerability advisory")


def test_manifest_formats() -> None:
    vite = {
        "resources/js/app.js": {
            "file": "assets/app-1.js",
            "css": ["assets/app-2.css"],
            "isEntry": True,
        }
    }
    assert manifest_paths(json.dumps(vite), "/build/") == [
        "/build/assets/app-1.js",
        "/build/assets/app-2.css",
    ]
    mix = {"/js/app.js": "/js/app.js?id=abc"}
    assert manifest_paths(json.dumps(mix), "/build/") == ["/js/app.js?id=abc"]
    flat = {"app.css": "app-1a.css"}
    assert manifest_paths(json.dumps(flat), "build") == ["/build/app-1a.css"]


def test_log_lines_count_after_the_switch_only() -> None:
    from datetime import UTC

    since = line_time("[2025-08-01 02:00:00]", UTC)
    assert since is not None
    log = "\n".join(
        [
            "[2025-08-01 01:59:59] production.ERROR: before the switch",
            "[2025-08-01 02:00:05] production.INFO: started",
            '[2025-08-01 02:00:07] production.ERROR: boom {"x":1}',
            "#0 /var/www/app.php(12): ERROR in a stack line, not an entry",
            '{"datetime":"2025-08-01T02:00:09.123+00:00","level_name":"CRITICAL","message":"m"}',
        ]
    )
    found = count_log_errors(log, since, r"\b(ERROR|CRITICAL)\b", UTC)
    assert (found.count, found.complete, found.stamped) == (2, True, 4)
    assert "boom" in found.examples[0]
