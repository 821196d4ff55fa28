"""`portal-ops feature ...` as a user runs it, without config or Redis.

The click command runs in-process (CliRunner: the same code path, a fraction of the time);
the first test runs ``python -m tui.cli`` for real in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def feature(state: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> Result:
    """``portal-ops feature ARGS`` in ``state`` (a directory without portal-ops.toml)."""
    from click.testing import CliRunner

    from tui.commands.feature import feature as group

    full_env = {
        "PORTAL_OPS_STATE_DIR": str(state),
        "PORTAL_OPS_OPERATOR": "carol",
        "PORTAL_OPS_CONFIG": None,
        "SSH_CONNECTION": None,
        "SUDO_USER": None,
        **(env or {}),
    }
    cwd = os.getcwd()
    os.chdir(state)
    try:
        res = CliRunner().invoke(group, list(args), input=stdin, env=full_env)
    finally:
        os.chdir(cwd)
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return Result(res.exit_code, res.stdout, res.stderr)


def real_feature(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tui.cli feature ARGS`` for real."""
    full_env = {
        **os.environ,
        "PORTAL_OPS_STATE_DIR": str(state),
        "PYTHONPATH": str(ROOT),
        "PORTAL_OPS_OPERATOR": "carol",
    }
    full_env.pop("PORTAL_OPS_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "feature", *args],
        cwd=state,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def ok(proc: Result | subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_seed_commands(state_dir: Path) -> None:
    ok(feature(state_dir, "create", "ui-improvements", "--description", "New UI"))
    out = ok(real_feature(state_dir, "enable", "ui-improvements", "--percentage=50"))
    assert "on at 50%" in out
    out = ok(feature(state_dir, "list"))
    assert "ui-improvements" in out and "50%" in out and "enable by carol" in out
    proc = real_feature(state_dir, "enable", "ui-improvements", "--percentage=50%")
    assert proc.returncode == 2 and "bad percentage '50%'" in proc.stderr
    out = ok(real_feature(state_dir, "emergency-disable", "--reason=Critical issue"))
    assert "EMERGENCY DISABLE active" in out
    listed = json.loads(ok(feature(state_dir, "list", "--json")))
    assert listed["emergency"]["active"] and listed["emergency"]["reason"] == "Critical issue"
    assert listed["flags"][0]["state"] == "emergency-off"
    assert listed["flags"][0]["percentage"] == 50  # configuration kept


def test_check_explains_the_decision(state_dir: Path) -> None:
    ok(feature(state_dir, "create", "ab12a", "--group", "ab12a"))
    ok(feature(state_dir, "enable", "ab12a", "--percentage", "50"))
    data = json.loads(ok(feature(state_dir, "check", "ab12a", "--company=122", "--json")))
    assert (data["value"], data["reason"], data["rule"]) == (False, "SPLIT", "percentage")
    ok(feature(state_dir, "override", "ab12a", "--company=122", "--on", "--reason", "pilot"))
    out = ok(feature(state_dir, "check", "ab12a", "--company=122"))
    assert "ON" in out and "TARGETING_MATCH" in out and "override for company 122" in out
    ok(feature(state_dir, "override", "ab12a", "--user=42", "--off"))
    data = json.loads(
        ok(feature(state_dir, "check", "ab12a", "--company=122", "--user=42", "--json"))
    )
    assert (data["value"], data["rule"]) == (False, "user-override")
    ok(feature(state_dir, "override", "ab12a", "--company=122", "--clear"))
    data = json.loads(ok(feature(state_dir, "check", "ab12a", "--company=122", "--json")))
    assert data["rule"] == "percentage"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "Bad Name"), "bad flag name"),
        (("enable", "f", "--percentage=50%"), "bad percentage"),
        (("enable", "f", "--percentage=101"), "bad percentage"),
        (("enable", "f", "--percentage=-1"), "bad percentage"),
        (("enable", "nope", "--percentage=10"), "unknown flag 'nope'"),
        (("disable", "nope"), "unknown flag"),
        (("check", "nope", "--company=1"), "unknown flag"),
        (("override", "f", "--company=1"), "exactly one of --on"),
        (("override", "f", "--company=1", "--user=2", "--on"), "exactly one of --company"),
        (("history", "nope"), "unknown flag"),
        (("emergency-disable",), "--reason"),
        (("rollout", "f", "--steps=50,10", "--no-gate"), "strictly increase"),
        (("rollout", "f", "--hold=soon", "--no-gate"), "bad duration"),
        (("rollout", "f", "--steps=10,50"), "no health gate"),
        (("stats", "f"), "none is configured"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(
    state_dir: Path, args: tuple[str, ...], message: str
) -> None:
    ok(feature(state_dir, "create", "f"))
    before = ok(feature(state_dir, "history", "--json"))
    proc = feature(state_dir, *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr
    assert ok(feature(state_dir, "history", "--json")) == before


def test_delete_asks(state_dir: Path) -> None:
    ok(feature(state_dir, "create", "old-flag"))
    proc = feature(state_dir, "delete", "old-flag", stdin="n\n")
    assert proc.returncode == 1 and "not deleted" in proc.stderr
    assert "old-flag" in ok(feature(state_dir, "list"))
    ok(feature(state_dir, "delete", "old-flag", stdin="y\n"))
    assert "no flags yet" in ok(feature(state_dir, "list"))
    history = json.loads(ok(feature(state_dir, "history", "old-flag", "--json")))
    assert [h["action"] for h in history] == ["delete", "create"]


def test_restore_asks_and_shows_what_comes_back(state_dir: Path) -> None:
    ok(feature(state_dir, "create", "a"))
    ok(feature(state_dir, "enable", "a", "--percentage=30"))
    ok(feature(state_dir, "create", "b"))  # off: not served again
    ok(feature(state_dir, "emergency-disable", "--reason", "outage"))
    proc = feature(state_dir, "restore", stdin="n\n")
    assert proc.returncode == 1
    assert "a: 30%" in proc.stdout and "b:" not in proc.stdout
    assert json.loads(ok(feature(state_dir, "list", "--json")))["emergency"]["active"]
    ok(feature(state_dir, "restore", "--yes", "--reason", "fixed"))
    assert not json.loads(ok(feature(state_dir, "list", "--json")))["emergency"]["active"]
    assert "not active" in ok(feature(state_dir, "restore", "--yes"))


def test_history_shows_who_what_and_why(state_dir: Path) -> None:
    ok(feature(state_dir, "create", "f"))
    ok(feature(state_dir, "enable", "f", "--percentage=10", "--reason", "canary"))
    ok(feature(state_dir, "enable", "f", "--percentage=50", "--reason", "looks good"))
    out = ok(feature(state_dir, "history", "f"))
    assert "percentage: 10 -> 50" in out and "reason: looks good" in out and "by carol@" in out
    data = json.loads(ok(feature(state_dir, "history", "--json", "--limit", "1")))
    assert data[0]["changes"] == {"percentage": [10, 50]}
    assert data[0]["operator_detail"]["user"] == "carol"


def test_ssh_origin_is_recorded(state_dir: Path) -> None:
    env = {"SSH_CONNECTION": "10.1.2.3 50000 10.0.0.1 22", "PORTAL_OPS_OPERATOR": "deploy"}
    ok(feature(state_dir, "create", "f", env=env))
    entry = json.loads(ok(feature(state_dir, "history", "--json")))[0]
    assert entry["operator"].startswith("deploy@") and "ssh from 10.1.2.3" in entry["operator"]


def test_rollout_without_gate_when_asked(state_dir: Path) -> None:
    ok(feature(state_dir, "create", "f"))
    out = ok(feature(state_dir, "rollout", "f", "--steps=10,50,100", "--hold=0s", "--no-gate"))
    assert "completed" in out
    steps = [
        e["after"]["percentage"]
        for e in json.loads(ok(feature(state_dir, "history", "f", "--json")))
        if e["action"] == "rollout-step"
    ]
    assert steps == [100, 50, 10]


def test_changes_land_in_the_journal_events(state_dir: Path) -> None:
    ok(feature(state_dir, "create", "f"))
    from backend.journal import Journal

    journal = Journal(state_dir / "journal.db")
    events = [e for e in journal.events() if e.kind == "flag.changed"]
    journal.close()
    assert events and events[0].data["flag"] == "f" and events[0].run == "flags"
