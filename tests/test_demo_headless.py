"""The demo's headless run, end to end: a real sandbox, the real engine, a real load probe.
Zero failed requests is the point of the switch (drain, switch, reload, health, enable)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def run_demo(*args: str) -> tuple[int, dict]:
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", "demo", "--headless", "--json", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.stdout.strip(), result.stderr[-3000:]
    return result.returncode, json.loads(result.stdout)


def test_demo_deploys_v2_with_zero_failed_requests() -> None:
    code, summary = run_demo()
    assert code == 0, summary.get("error")
    assert summary["outcome"] == "succeeded"
    assert summary["deployment_id"].startswith("bp-")
    assert [p["name"] for p in summary["phases"]][:1] == ["validate-pre"] and len(
        summary["phases"]
    ) == 9
    assert summary["requests_sent"] > 20
    assert summary["requests_failed"] == 0, summary["probe"]
    assert len(set(summary["live_releases"].values())) == 1
    assert summary["release"] in summary["live_releases"].values()


@pytest.mark.parametrize("scenario", ["health", "migration", "host"])
def test_demo_break_rolls_back_to_v1_with_zero_failed_requests(scenario: str) -> None:
    code, summary = run_demo(f"--break={scenario}")
    assert code == 1  # the deployment failed...
    assert summary["outcome"] == "rolled_back"
    rollback = summary["rollback"]
    assert rollback["outcome"] == "succeeded"  # ...and the rollback succeeded
    assert len(rollback["phases"]) == 10 and rollback["total_seconds"] > 0
    releases = set(summary["live_releases"].values())
    assert len(releases) == 1 and summary["release"] not in releases  # all back on v1
    assert summary["requests_failed"] == 0, summary["probe"]


def test_demo_errors_are_caught_by_the_monitor_which_rolls_back() -> None:
    code, summary = run_demo("--break=errors")
    assert code == 1
    assert summary["outcome"] == "rolled_back"
    phases = {p["name"]: p["status"] for p in summary["phases"]}
    assert phases["validate-post"] == "succeeded"  # the checks passed: the leak came later
    assert phases["finalize"] == "failed"
    trigger = summary["rollback"]["trigger"]
    assert trigger["rule"] == "error-rate" and trigger["threshold"] == 0.01
    assert len(trigger["values"]) >= 3 and all(v > 0.01 for v in trigger["values"][-3:])
    assert trigger["window_start"] < trigger["window_end"]
    assert summary["rollback"]["outcome"] == "succeeded"
    assert len(set(summary["live_releases"].values())) == 1
    assert summary["release"] not in summary["live_releases"].values()
