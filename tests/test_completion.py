"""Shell completion: the generated scripts are valid, and real bash completes commands,
options, deployment ids from the journal and flag names through them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backend.flags.service import FlagService
from backend.journal import Journal

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def on_path(tmp_path: Path) -> dict[str, str]:
    """``portal-ops`` on PATH (this checkout), an isolated state dir with two deployments
    and a flag."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "portal-ops"
    exe.write_text(f'#!/bin/sh\nexec {sys.executable} -m tui.cli "$@"\n')
    exe.chmod(0o755)
    state = tmp_path / "state"
    journal = Journal(state / "journal.db")
    for n, ident in enumerate(("bp-20260101-010000-aaaaaa", "bp-20260102-010000-bbbbbb")):
        journal.cache_deployment({"id": ident, "target": "p", "started_at": n + 1.0, "hosts": []})
    FlagService(journal).create("new-checkout", reason="test")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_OPS_")}
    env.update(
        PATH=f"{bin_dir}:{env['PATH']}",
        PYTHONPATH=str(ROOT),
        PORTAL_OPS_STATE_DIR=str(state),
        HOME=str(tmp_path),
    )
    return env


def _script(shell: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        ["portal-ops", "completion", shell], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_scripts_are_valid_shell(on_path: dict[str, str], tmp_path: Path) -> None:
    bash = _script("bash", on_path)
    assert "_PORTAL_OPS_COMPLETE" in bash
    (tmp_path / "c.bash").write_text(bash)
    assert subprocess.run(["bash", "-n", str(tmp_path / "c.bash")]).returncode == 0
    for shell in ("zsh", "fish"):
        script = _script(shell, on_path)
        assert "_PORTAL_OPS_COMPLETE" in script
        if shutil.which(shell):  # checked by the shell itself where it is installed
            (tmp_path / f"c.{shell}").write_text(script)
            assert subprocess.run([shell, "-n", str(tmp_path / f"c.{shell}")]).returncode == 0


def _complete(env: dict[str, str], script: Path, line: str) -> list[str]:
    """What real bash offers for ``line`` (TAB at its end), through the generated script."""
    words = line.split(" ")
    probe = (
        f"source {script}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        "_portal_ops_completion portal-ops\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    out = subprocess.run(["bash", "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_bash_completes_deployment_ids_through_the_script(
    on_path: dict[str, str], tmp_path: Path
) -> None:
    from click.shell_completion import get_completion_class

    from tui.cli import cli

    bash = get_completion_class("bash")
    assert bash is not None
    script = tmp_path / "c.bash"  # what `portal-ops completion bash` prints (tested above)
    script.write_text(bash(cli, {}, "portal-ops", "_PORTAL_OPS_COMPLETE").source())
    assert _complete(on_path, script, "portal-ops rollback bp-2026010") == [
        "bp-20260102-010000-bbbbbb",
        "bp-20260101-010000-aaaaaa",
    ]


def test_commands_options_ids_and_flag_names_complete(
    on_path: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same completion code bash calls, in this process (no interpreter per TAB)."""
    from click.shell_completion import ShellComplete

    from tui.cli import cli

    monkeypatch.setenv("PORTAL_OPS_STATE_DIR", on_path["PORTAL_OPS_STATE_DIR"])
    complete = ShellComplete(cli, {}, "portal-ops", "_PORTAL_OPS_COMPLETE")

    def offered(args: list[str], incomplete: str) -> list[str]:
        return [c.value for c in complete.get_completions(args, incomplete)]

    assert "rollback" in offered([], "rol")
    assert set(offered(["rollback"], "--")) >= {"--reason", "--hosts", "--roles", "--env"}
    assert offered(["show"], "bp-20260101") == ["bp-20260101-010000-aaaaaa"]
    assert offered(["resume"], "bp-") == ["bp-20260102-010000-bbbbbb", "bp-20260101-010000-aaaaaa"]
    assert offered(["feature", "enable"], "new-") == ["new-checkout"]
    assert offered(["feature", "enable"], "zzz") == []


def test_unknown_shell_is_a_usage_error(on_path: dict[str, str]) -> None:
    out = subprocess.run(
        ["portal-ops", "completion", "tcsh"], env=on_path, capture_output=True, text=True
    )
    assert out.returncode == 2 and "tcsh" in out.stderr
