"""``portal-ops validate pre|post``: the table, the JSON report, and the exit codes
(0 go, 1 no-go, 2 usage or config error, unknown deployment id included)."""

# ruff: noqa: F811  (pytest fixtures imported from tests.test_checks_support)
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from backend.events import Event, Kind
from backend.journal import Journal
from tests.test_checks_support import PortalApp, portal_app  # noqa: F401
from tui.cli import cli

RELEASE = "20250801020000"


def write_config(tmp_path: Path, extra: str = "", validation: str = "") -> Path:
    deploy = tmp_path / "app"
    (deploy / "releases" / RELEASE).mkdir(parents=True, exist_ok=True)
    if not (deploy / "current").is_symlink():
        (deploy / "current").symlink_to(f"releases/{RELEASE}")
    path = tmp_path / "portal-ops.toml"
    path.write_text(
        f"""
[portal]
repository = "{tmp_path / "repo"}"
deploy_path = "{deploy}"
{extra}

[[hosts]]
name = "web-1"
address = "localhost"
transport = "local"

[state]
dir = "{tmp_path / "state"}"

[validation]
timeout = 10
disk_free_warn_below = 0
disk_free_fail_below = 0
memory_warn_above = 100
memory_fail_above = 100
{validation}
"""
    )
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_pre_go_prints_table_and_writes_json(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    out = tmp_path / "pre.json"
    code, stdout, _ = invoke(
        "validate", "pre", "--config", str(config), "--only", "p06,P07", "--json", str(out)
    )
    assert code == 0, stdout
    assert "P06*" in stdout and "Disk free on the deploy path" in stdout
    assert "Decision: GO" in stdout and "Score 100/100" in stdout
    data = json.loads(out.read_text())
    assert data["phase"] == "pre" and data["decision"] == "go" and data["score"] == 100.0
    assert [c["id"] for c in data["checks"]] == ["P06", "P07"]
    assert {r["status"] for r in data["checkResults"]} == {"ok"}
    stored = list((tmp_path / "state" / "validation").glob("adhoc-*.pre.json"))
    assert len(stored) == 1


def test_pre_no_go_exits_1_and_json_to_stdout(tmp_path: Path) -> None:
    config = write_config(tmp_path, validation='database = { command = "false", cwd = "." }')
    code, stdout, stderr = invoke(
        "validate", "pre", "--config", str(config), "--only", "P09", "--json", "-"
    )
    assert code == 1
    data = json.loads(stdout)  # only the JSON on stdout; the table went to stderr
    assert data["decision"] == "no-go" and data["reasons"][0].startswith("critical check P09")
    assert "Decision: NO-GO" in stderr


def test_usage_and_config_errors_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    code, _, stderr = invoke("validate", "pre", "--config", str(config), "--only", "Q01")
    assert code == 2 and "unknown pre check id(s) Q01" in stderr
    code, _, stderr = invoke("validate", "post", "bp-nope", "--config", str(config))
    assert code == 2 and "unknown deployment id 'bp-nope'" in stderr
    bad = write_config(tmp_path, validation='disabled = { P03 = "" }')
    code, _, stderr = invoke("validate", "pre", "--config", str(bad))
    assert code == 2 and "validation.disabled" in stderr and "needs a reason" in stderr
    assert not (tmp_path / "state" / "validation").exists()  # nothing ran, nothing written


def test_post_reads_the_deployment_from_the_journal(tmp_path: Path, portal_app: PortalApp) -> None:
    portal_app.version = {"release": RELEASE}
    config = write_config(
        tmp_path,
        extra=f'public_url = "{portal_app.url}"\nversion_url = "{portal_app.url}/version"',
    )
    journal = Journal(tmp_path / "state" / "journal.db")
    journal.record(
        Event(
            Kind.DEPLOYMENT_STARTED,
            deployment_id="bp-20250801-0200",
            data={"target": "business-portal", "release": RELEASE, "revision": "main"},
        )
    )
    journal.close()
    code, stdout, _ = invoke(
        "validate", "post", "bp-20250801-0200", "--config", str(config), "--only", "Q01,Q04"
    )
    assert code == 0, stdout
    assert f"current -> {RELEASE}" not in stdout  # messages of passing rows stay out of the table
    assert "Decision: GO" in stdout
    report = tmp_path / "state" / "validation" / "bp-20250801-0200.post.json"
    data = json.loads(report.read_text())
    assert data["deployment_id"] == "bp-20250801-0200" and data["release"] == RELEASE
    portal_app.version = {"release": "20250701000000"}
    code, stdout, _ = invoke("validate", "post", "--config", str(config), "--only", "Q04")
    assert code == 1 and "expected" in stdout  # the latest deployment, serving the wrong one


def test_render_marks_critical_and_lists_findings(tmp_path: Path) -> None:
    from tui.commands.validate import render

    report = {
        "checks": [
            {
                "id": "P06",
                "title": "Disk",
                "host": "web-1",
                "value": 5.0,
                "unit": "% free",
                "threshold": ">= 20 %",
                "status": "fail",
                "critical": True,
                "duration_ms": 12.0,
                "message": "5% free",
            }
        ],
        "counts": {"pass": 0, "fail": 1},
        "decision": "no-go",
        "score": 0.0,
        "pass_score": 90.0,
        "reasons": ["critical check P06 Disk fail: web-1: 5% free"],
    }
    text = render(report, colour=False)
    assert "P06*" in text and "5.0 % free" in text and "Decision: NO-GO" in text
    assert "P06 web-1: 5% free" in text
