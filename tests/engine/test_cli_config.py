"""Bad config files give every problem, the documented format and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GOOD = """
[portal]
repository = "git@example.com:acme/portal.git"
deploy_path = "/var/www/portal"

[[hosts]]
name = "web-1"
address = "10.0.0.1"
"""


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (GOOD + "bogus = 1\n", "hosts[0] (web-1).bogus: unknown key"),
        (
            GOOD.replace('address = "10.0.0.1"', 'address = "10.0.0.1"\nport = "ssh"'),
            "port: Input should be a valid integer",
        ),
        (
            GOOD.replace('address = "10.0.0.1"\n', ""),
            "hosts[0] (web-1).address: required key is missing",
        ),
        (
            GOOD + '\n[rollout]\nbatches = ["1", "half"]\n',
            "rollout.batches: bad batch spec ['half']",
        ),
        ("[portal\n", "not valid TOML"),
    ],
)
def test_bad_config_exits_2_naming_file_and_key(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "portal-ops.toml"
    path.write_text(body)
    result = run_cli("config", "check", "--config", str(path))
    assert result.returncode == 2, result.stderr
    assert str(path) in result.stderr
    assert expected in result.stderr


def test_every_problem_is_listed_not_only_the_first(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        GOOD.replace('address = "10.0.0.1"', "port = 99999\nfoo = 1")
        + "[rollout]\nmax_fail_percentage = 150\n"
    )
    result = run_cli("deploy", "--dry-run", "--config", str(path))
    assert result.returncode == 2
    for fragment in (
        "address: required key is missing",
        "port:",
        "foo: unknown key",
        "max_fail_percentage",
    ):
        assert fragment in result.stderr, fragment


def test_config_from_environment_and_check_prints_plan(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "custom.toml"
    path.write_text(GOOD)
    monkeypatch.setenv("PORTAL_OPS_CONFIG", str(path))
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", "config", "check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "web-1" in result.stdout and "batches" in result.stdout


def test_missing_config_is_a_usage_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PORTAL_OPS_CONFIG", raising=False)
    result = run_cli("history", cwd=tmp_path)
    assert result.returncode == 2
    assert "file not found" in result.stderr
