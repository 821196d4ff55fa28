"""One duration parser for the config and the command line (backend/durations.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backend.config import ConfigError, load_config
from backend.durations import DurationError, parse_duration

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1h 30m 15s", 5415.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("2m500ms", 120.5),
        ("0", 0.0),
    ],
)
def test_every_form_parses(text: object, seconds: float) -> None:
    assert parse_duration(text, "k") == seconds


@pytest.mark.parametrize("bad", ["", "5x", "m", "5m1h", "1h1h", "-5s", "1,5s", True, -1, None])
def test_bad_values_name_the_key(bad: object) -> None:
    with pytest.raises(DurationError) as err:
        parse_duration(bad, "rollout.drain_seconds")
    assert str(err.value).startswith("rollout.drain_seconds: bad duration")


def _config(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "portal-ops.toml"
    path.write_text(
        '[portal]\nrepository = "/srv/repo.git"\ndeploy_path = "/srv/portal"\n'
        '[[hosts]]\nname = "web-1"\naddress = "127.0.0.1"\n' + extra
    )
    return path


def test_config_durations_take_units(tmp_path: Path) -> None:
    config = load_config(
        _config(
            tmp_path,
            '[ssh]\ncommand_timeout = "1h30m"\nstep_timeouts = { migrate = "30m" }\n'
            '[rollout]\ndrain_seconds = "1500ms"\n[monitor]\nwindow_seconds = "1m"\n'
            '[flags]\nrollout_hold = "2m"\n',
        )
    )
    assert config.ssh.command_timeout == 5400
    assert config.ssh.step_timeouts == {"migrate": 1800}
    assert config.rollout.drain_seconds == 1.5
    assert config.monitor.window_seconds == 60
    assert config.flags.rollout_hold == 120


def test_bad_config_duration_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, '[rollout]\nhealth_timeout = "5 minutes"\n'))
    assert any(p.startswith("rollout.health_timeout: bad duration") for p in err.value.problems)


def test_bad_cli_duration_exits_2_naming_the_option(tmp_path: Path) -> None:
    path = _config(tmp_path, "")
    proc = subprocess.run(
        [sys.executable, "-m", "tui.cli", "monitor", "--config", str(path), "--duration", "5q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--duration" in proc.stderr and "5q" in proc.stderr


def test_feature_durations_name_the_option(tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from tui.cli import cli

    monkeypatch.setenv("PORTAL_OPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["feature", "stats", "x", "--since", "5q"])
    assert result.exit_code == 2
    assert "--since: bad duration '5q'" in result.stderr
