"""The CLI imports only what a command needs: help and version load no engine, no SSH
library and no Textual; deploy and rollback load no Textual."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs the CLI in-process, then prints which of the heavy modules got imported.
PROBE = """
import json, sys
sys.argv = ["portal-ops", *sys.argv[1:]]
from tui.cli import main
try:
    main()
except SystemExit:
    pass
heavy = ("textual", "asyncssh", "backend.engine", "backend.config", "httpx", "pydantic")
print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)
"""


def loaded(*args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(out.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["-h"]])
def test_help_and_version_load_nothing_heavy(args: list[str]) -> None:
    assert loaded(*args) == []


@pytest.mark.parametrize("command", ["deploy", "rollback", "resume", "history", "unlock"])
def test_engine_commands_load_no_textual(command: str) -> None:
    assert "textual" not in loaded(command, "--help")


def test_version_subprocess_importtime() -> None:
    """`python -X importtime -m tui.cli --version` names no heavy module."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tui.cli", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    names = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines()}
    for heavy in ("textual", "asyncssh", "backend.engine"):
        assert heavy not in names


def test_listed_help_matches_each_command() -> None:
    """The one-line summaries `--help` shows without importing equal the commands' own."""
    import click

    from tui.cli import COMMANDS, cli

    ctx = click.Context(cli)
    for name, entry in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None
        assert entry.summary == command.get_short_help_str(limit=300), name
