"""``portal-ops monitor`` as an operator runs it: a real process, real traffic, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.test_monitor_app import DegradingApp, Traffic
from tui.cli import cli
from tui.commands.monitor import parse_duration

ROOT = Path(__file__).resolve().parent.parent


def write_config(path: Path, app: DegradingApp, state: Path, rules: str = "") -> Path:
    path.write_text(
        f"""
[portal]
repository = "file:///dev/null"
deploy_path = "/srv/portal"

[[hosts]]
name = "web-1"
address = "127.0.0.1"
transport = "local"

[state]
dir = "{state}"

[monitor]
window_seconds = 0.5
min_requests = 5
default_rules = false

[monitor.access_log]
enabled = true
path = "{app.log_path}"
{rules}
"""
    )
    return path


ERRORS_RULE = """
[[monitor.rules]]
name = "errors"
metric = "error_rate"
threshold = 0.05
for_windows = 2
"""


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[DegradingApp]:
    server = DegradingApp(tmp_path / "access.log").start()
    yield server
    server.stop()


def _env(state: Path) -> dict[str, str]:
    return {**os.environ, "PORTAL_OPS_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}


async def test_piped_lines_then_ctrl_c_writes_the_report(
    app: DegradingApp, tmp_path: Path, state_dir: Path
) -> None:
    config = write_config(tmp_path / "portal-ops.toml", app, state_dir)
    report = tmp_path / "out" / "report.md"
    traffic = await Traffic(app.url, concurrency=2, pause=0.01).start()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli", "monitor", "bp-cli", "--config", str(config),
        "--duration", "10m", "--report", str(report),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(state_dir),
        cwd=ROOT,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        while sum(" window " in line for line in lines) < 3:
            raw = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert raw, f"monitor ended early: {lines}"
            lines.append(raw.decode())
        proc.send_signal(signal.SIGINT)
        rest, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await traffic.stop()
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    window_lines = [line for line in lines if " window " in line]
    assert all(" total n=" in line and "web-1 n=" in line for line in window_lines)
    assert "verdict PASS" in rest.decode() and "(interrupted)" in rest.decode()
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["stopped_by"] == "interrupted" and data["deployment_id"] == "bp-cli"
    assert report.read_text().startswith("# Monitoring report: bp-cli")
    assert list((state_dir / "reports").glob("monitor-bp-cli-*.json"))
    assert "Traceback" not in err.decode()


def _read_all(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other end of the pty closed
            return out
        if not chunk:
            return out
        out += chunk


async def test_terminal_table_fires_and_auto_rollback_says_what_it_could_not_do(
    app: DegradingApp, tmp_path: Path, state_dir: Path
) -> None:
    """In a terminal (a pty) the table redraws in place; a firing rule exits 1."""
    config = write_config(tmp_path / "portal-ops.toml", app, state_dir, ERRORS_RULE)
    app.degrade(errors=0.5)
    traffic = await Traffic(app.url, concurrency=2, pause=0.01).start()
    master, slave = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tui.cli", "monitor", "--config", str(config),
            "--duration", "3s", "--auto-rollback",
            stdout=slave, stderr=asyncio.subprocess.PIPE, env=_env(state_dir), cwd=ROOT,
        )  # fmt: skip
        os.close(slave)
        out = await asyncio.wait_for(asyncio.to_thread(_read_all, master), 90)
        err = await proc.stderr.read() if proc.stderr else b""
        await asyncio.wait_for(proc.wait(), 30)
    finally:
        os.close(master)
        await traffic.stop()
    text = out.decode(errors="replace")
    assert proc.returncode == 1, err.decode()
    assert "\x1b[" in text and "F\x1b[J" in text  # redrawn in place
    assert "p95 ms" in text and "web-1" in text and "total" in text
    assert "trigger: rule errors" in text
    assert "could not run" in text  # no deployment in the journal: said, not hidden


def test_bad_duration_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["monitor", "--duration", "soon"])
    assert result.exit_code == 2 and "90s, 15m, 1h" in result.output
    assert parse_duration("15m", "--duration") == 900 and parse_duration("500ms", "x") == 0.5
