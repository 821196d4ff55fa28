"""CI mode: the real ``portal-ops`` command in a subprocess, deploying to local-transport
hosts (real git, real folders), read the way a pipeline reads it: exit codes, JSON on
stdout, progress on stderr, JSON errors, GitHub step summaries, NO_COLOR on a real tty."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine.helpers import make_repo

REPO_ROOT = Path(__file__).resolve().parent.parent


class Site:
    """A config deploying to one local host; ``fail`` makes its reload fail from now on."""

    def __init__(self, root: Path, on_failure: str = "rollback") -> None:
        self.root = root
        repo = make_repo(root)
        self.fail = root / "fail"
        self.state = root / "state"
        self.config = root / "portal-ops.toml"
        self.config.write_text(
            f"""
[portal]
name = "ci-portal"
repository = "{repo}"
revision = "v2"
deploy_path = "{root}/app"
database_rollback = "none"
on_failure = "{on_failure}"

[[hosts]]
name = "web-1"
address = "localhost"
transport = "local"

[rollout]
batches = ["100%"]
drain_seconds = 0

[commands]
install = "test -f VERSION"
# fails for release v2 (VERSION 2) once `fail` exists; the rollback to v1 then reloads fine
reload = "grep -qx 1 {root}/app/current/VERSION || test ! -e {self.fail}"

[state]
dir = "{self.state}"
"""
        )

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "GITHUB_STEP_SUMMARY")}
        env.update(PORTAL_OPS_STATE_DIR=str(self.state), CI_HOOK_URL="http://127.0.0.1:9/h")
        env.update(extra)
        return env

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tui.cli", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            env=self.env(**env),
            timeout=120,
        )

    def deploy(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run("deploy", "--skip-validation", *args, **env)

    def deployed(self, revision: str) -> None:
        """A deployment made in-process with the same config, as the starting point of a
        test about the next run (a CLI process here would check nothing and cost ~0.6 s)."""
        from backend.config import load_config
        from backend.engine import Engine

        engine = Engine(load_config(self.config))
        result = asyncio.run(engine.deploy(revision=revision, skip_validation=True))
        assert result.ok, result.error


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def _json(result: subprocess.CompletedProcess[str]) -> dict:
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not one JSON document:\n{result.stdout}\n---\n{result.stderr}")


def test_json_result_on_stdout_and_progress_on_stderr(site: Site) -> None:
    result = site.deploy("--revision", "v1", "--json")
    assert result.returncode == 0, result.stderr
    assert _json(result)["outcome"] == "succeeded"
    assert "[4/9] Code deployment" in result.stderr  # the run is not silent


def test_events_as_json_lines_on_stderr(site: Site) -> None:
    result = site.deploy("--revision", "v1", "--json", "--events")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    kinds = [e["kind"] for e in events]
    assert "deployment.started" in kinds and "phase.finished" in kinds
    assert all(e["deployment_id"] == _json(result)["deployment_id"] for e in events)


def test_exit_1_when_it_failed_before_any_change(site: Site) -> None:
    result = site.deploy("--revision", "no-such-tag", "--json")
    assert result.returncode == 1, result.stderr
    assert _json(result)["outcome"] == "failed"
    assert not (site.root / "app" / "current").exists()


def test_exit_3_when_rolled_back_cleanly(site: Site) -> None:
    site.deployed("v1")
    site.fail.touch()
    result = site.deploy("--revision", "v2", "--json")
    assert result.returncode == 3, result.stderr
    assert _json(result)["outcome"] == "rolled_back"


def test_exit_4_when_a_person_is_needed(tmp_path: Path) -> None:
    site = Site(tmp_path, on_failure="pause")
    site.deployed("v1")
    site.fail.touch()
    result = site.deploy("--revision", "v2", "--json")
    assert result.returncode == 4, result.stderr
    assert _json(result)["outcome"] == "paused"


def test_config_errors_are_json_under_json(site: Site) -> None:
    site.config.write_text(site.config.read_text() + "\nbogus = 1\n")
    result = site.deploy("--json")
    assert result.returncode == 2
    body = _json(result)
    assert body["exit_code"] == 2
    assert any("bogus" in p for p in body["problems"])


def test_usage_errors_are_json_under_json(site: Site) -> None:
    result = site.deploy("--json", "--no-such-option")
    assert result.returncode == 2
    assert "--no-such-option" in _json(result)["error"]


def test_github_step_summary_and_error_annotation(site: Site, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    assert site.deploy("--revision", "v1", GITHUB_STEP_SUMMARY=str(summary)).returncode == 0
    assert "succeeded" in summary.read_text()
    site.fail.touch()
    result = site.deploy("--revision", "v2", "--json", GITHUB_STEP_SUMMARY=str(summary))
    assert result.returncode == 3
    text = summary.read_text()
    assert "rolled_back" in text and "| web-1 |" in text  # appended: both runs are there
    assert "::error title=portal-ops deploy" in result.stderr
    _json(result)  # the annotation never leaks into the JSON on stdout


def test_rollback_reason_option_and_a_lone_reason_refused(site: Site) -> None:
    site.deployed("v1")
    site.deployed("v2")
    lone = site.run("rollback", "site is down")
    assert lone.returncode == 2
    assert "--reason" in lone.stderr
    result = site.run("rollback", "--reason", "site is down", "--json")
    assert result.returncode == 0, result.stderr
    assert _json(result)["reason"] == "site is down"


def test_validate_json_flag_prints_the_report(site: Site) -> None:
    result = site.run("validate", "pre", "--json", "--only", "P01")
    assert result.returncode in (0, 1), result.stderr
    assert _json(result)["checks"][0]["id"] == "P01"


def _on_tty(site: Site, *args: str, **env: str) -> str:
    """Run the command with stdout on a real pseudo-terminal; what it wrote there."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", *args],
        stdout=follower,
        stderr=follower,
        cwd=REPO_ROOT,
        env=site.env(**env),
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize(
    "args",
    [
        ("notify", "deployment-success", "--dry-run"),
        ("validate", "pre", "--only", "P01"),
    ],
)
def test_no_color_is_honoured(site: Site, args: tuple[str, ...]) -> None:
    site.config.write_text(
        site.config.read_text()
        + '\n[notify.channels.deployments]\nkind = "webhook"\nurl_env = "CI_HOOK_URL"\n'
    )
    argv = (*args, "--config", str(site.config))
    assert "\x1b[" in _on_tty(site, *argv)  # colours on a terminal by default
    assert "\x1b[" not in _on_tty(site, *argv, NO_COLOR="1")
    assert "\x1b[" not in _on_tty(site, "--no-color", *argv)


def test_debug_writes_the_log_file_in_the_state_dir(site: Site) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tui.cli",
            "--debug",
            "config",
            "check",
            "--config",
            str(site.config),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=site.env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    log = site.state / "portal-ops.log"
    assert "DEBUG" in log.read_text()


async def test_monitor_json_report_on_stdout_windows_on_stderr(tmp_path: Path) -> None:
    from tests.test_monitor_app import DegradingApp, Traffic
    from tests.test_monitor_cli import write_config

    state = tmp_path / "state"
    app = DegradingApp(tmp_path / "access.log").start()
    try:
        config = write_config(tmp_path / "portal-ops.toml", app, state)
        traffic = await Traffic(app.url, concurrency=2, pause=0.01).start()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tui.cli", "monitor", "bp-ci", "--json",
                "--duration", "2s", "--config", str(config),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO_ROOT,
                env={**os.environ, "PORTAL_OPS_STATE_DIR": str(state)},
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            await traffic.stop()
    finally:
        app.stop()
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["deployment_id"] == "bp-ci" and report["windows"] >= 1
    assert " window " in err.decode()


@pytest.mark.parametrize(
    ("outcome", "rollback", "error", "run", "code"),
    [
        ("succeeded", None, None, "deploy", 0),
        ("failed", None, "phase 4 (Code deployment) failed", "deploy", 1),
        ("rolled_back", {"outcome": "succeeded"}, "phase 6 failed", "deploy", 3),
        ("failed", {"outcome": "failed"}, "phase 6 failed", "deploy", 4),  # rollback failed too
        ("failed", None, "interrupted: portal-ops was stopped", "deploy", 4),
        ("partial", None, None, "deploy", 4),
        ("paused", None, None, "resume", 4),
        ("succeeded", None, None, "rollback", 0),
        ("partial", None, None, "rollback", 4),
        ("failed", None, None, "rollback", 4),
    ],
)
def test_exit_code_table(
    outcome: str, rollback: dict | None, error: str | None, run: str, code: int
) -> None:
    from tui.commands.common import exit_code

    assert exit_code(outcome, rollback, error, run) == code
