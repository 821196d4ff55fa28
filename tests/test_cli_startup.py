"""The CLI imports only what a command needs: help and version load no engine, no SSH
library and no Textual; deploy and rollback load no Textual."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

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
heavy = ("textual", "asyncssh", "backend.engine", "backend.config", "httpx", "backend.schema")
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


@pytest.mark.parametrize("command", ["deploy", "rollback", "resume"])
def test_engine_commands_help_loads_no_engine_nor_config_models(command: str) -> None:
    """`deploy --help` (and shell completion, which loads the same module on every TAB)
    loads neither the engine nor the config's sections: CPU the help and each
    completion would pay for nothing."""
    assert loaded(command, "--help") == []


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


# A deployment in a process of its own, then the libraries it loaded: the engine's path
# loads only what the run uses (no HTTP client when no check makes a request).
DEPLOY_PROBE = """
import asyncio, json, sys
from pathlib import Path
from typing import Any
from backend.config import parse_config
from backend.engine import Engine
from backend.journal import Journal

config = parse_config(json.loads(Path(sys.argv[1]).read_text()))
engine = Engine(config, journal=Journal(Path(config.state.dir) / "journal.db"))
result = asyncio.run(engine.deploy(revision="v1", skip_validation=True))
assert result.ok, result.error
heavy = ("httpx", "rich", "pygments", "textual", "sqlite_utils", "click", "prometheus_client")
# a module backend.lazy holds but nothing used yet is not loaded: its class says so
loaded = [m for m in heavy if m in sys.modules and type(sys.modules[m]).__name__ != "_LazyModule"]
print(json.dumps(sorted(loaded)), file=sys.stderr)
"""


def deploy_loaded(sshd: Any, tmp_path: Path) -> set[str]:
    """Which of DEPLOY_PROBE's heavy libraries a 2-host deployment loaded."""
    from tests.engine.helpers import make_repo, ssh_config

    cfg = ssh_config(sshd, tmp_path, make_repo(tmp_path), hosts=2)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(cfg))
    out = subprocess.run(
        [sys.executable, "-c", DEPLOY_PROBE, str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return set(json.loads(out.stderr.strip().splitlines()[-1]))


def test_deploy_loads_no_http_client_nor_sqlite_utils(sshd: Any, tmp_path: Path) -> None:
    """A deployment whose checks make no HTTP request (no public URL, no version URL)
    imports no httpx (nor the rich and pygments httpx's CLI pulls in): 6 MB and 0.1 s.
    And the journal is plain sqlite3: no sqlite-utils (nor its click, pluggy and
    dateutil, 5 MB). One deployment for both: it is the slow part."""
    loaded = deploy_loaded(sshd, tmp_path)
    assert not {"httpx", "rich", "pygments", "textual"} & loaded, loaded
    assert not {"sqlite_utils", "click"} & loaded, loaded


def test_ssh_transport_loads_no_config_models() -> None:
    """The transport takes its options as plain values: importing it loads no config
    sections (the fan-out's whole-process start-up)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, backend.transport.ssh;"
            " print(json.dumps(sorted(m for m in ('backend.schema', 'backend.config') if m in sys.modules)))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


CLI_DEPLOY_PROBE = """
import json, sys
sys.argv = ["portal-ops", "deploy", "--config", sys.argv[1], "--revision", "v1", "--json"]
from tui.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
heavy = ("httpx", "rich", "pygments", "textual", "sqlite_utils", "prometheus_client", "jinja2")
loaded = [m for m in heavy if m in sys.modules and type(sys.modules[m]).__name__ != "_LazyModule"]
print(json.dumps({"code": code, "loaded": sorted(loaded)}), file=sys.stderr)
"""


def test_cli_deploy_loads_no_notification_or_metrics_library(sshd: Any, tmp_path: Path) -> None:
    """`portal-ops deploy` with no [notify] channels and no [metrics]: no httpx (rich,
    pygments), no prometheus-client, no Jinja; they load when a channel or metrics are
    configured."""
    from backend.demo.sandbox import dump_toml
    from tests.engine.helpers import make_repo, ssh_config

    cfg = ssh_config(sshd, tmp_path, make_repo(tmp_path), hosts=2)
    config = tmp_path / "portal-ops.toml"
    config.write_text(dump_toml(cfg))
    out = subprocess.run(
        [sys.executable, "-c", CLI_DEPLOY_PROBE, str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    got = json.loads(out.stderr.strip().splitlines()[-1])
    assert got["code"] in (0, None), out.stdout[-3000:] + out.stderr[-3000:]
    assert got["loaded"] == [], got


def printed_by(code: str) -> Any:
    """What a fresh interpreter running ``code`` in the checkout prints, as JSON."""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_lazy_module_loads_on_first_use_only() -> None:
    """backend.lazy: the module is named at once and executed on the first attribute read;
    an unknown name fails at once, as an import does."""
    code = (
        "import sys, json\n"
        "from backend.lazy import lazy_module\n"
        "m = lazy_module('wave')\n"
        "before = type(sys.modules['wave']).__name__\n"
        "m.open\n"
        "after = type(sys.modules['wave']).__name__\n"
        "try:\n"
        "    lazy_module('no_such_module_here')\n"
        "    missing = 'imported'\n"
        "except ModuleNotFoundError:\n"
        "    missing = 'refused'\n"
        "print(json.dumps([before, after, missing]))\n"
    )
    assert printed_by(code) == ["_LazyModule", "module", "refused"]


def test_cli_deploy_logs_in_to_each_host_once(tmp_path: Path) -> None:
    """`portal-ops deploy` reads the hosts for the crash warning before it starts; the
    deployment then uses the connections that read opened, not a second login per host
    (at 50 hosts on loopback the second round of logins cost ~1.3 s and 0.16 s of CPU)."""
    from backend.demo.sandbox import dump_toml
    from tests.engine.helpers import make_repo, ssh_config
    from tests.fixtures.sshd import SSHServer

    with SSHServer(tmp_path / "sshd", log_level="INFO").start() as sshd:
        cfg = ssh_config(sshd, tmp_path, make_repo(tmp_path), hosts=2)
        cfg["state"] = {"dir": str(tmp_path / "state")}
        config = tmp_path / "portal-ops.toml"
        config.write_text(dump_toml(cfg))
        before = sshd.logins()
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "tui.cli",
                "deploy",
                "--config",
                str(config),
                "--revision",
                "v1",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert sshd.logins() - before == 2


def _linker_search_log(tmp_path: Path, code: str) -> list[str]:
    """Which of gcc, cc and ld ``code`` started: stand-ins first on PATH record each call."""
    import os

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "started.log"
    log.write_text("")
    for name in ("gcc", "cc", "ld", "objdump"):
        stand_in = bin_dir / name
        stand_in.write_text(f"#!/bin/sh\necho {name} >> {log}\nexit 1\n")
        stand_in.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
    return log.read_text().split()


def test_ssh_transport_imports_asyncssh_without_linker_searches(tmp_path: Path) -> None:
    """asyncssh's import looks for liboqs; ctypes would run gcc and ld for it (50-130 ms of
    every start). The transport imports it asking the linker's cache only."""
    assert _linker_search_log(tmp_path, "import asyncssh"), "the stand-ins saw nothing"
    assert _linker_search_log(tmp_path, "import backend.transport.ssh") == []
    code = (
        "import ctypes.util, backend.transport.ssh;"
        "assert ctypes.util.find_library.__name__ == 'find_library'"
    )
    assert _linker_search_log(tmp_path, code) == []  # the stand-in is gone after the import


def test_a_lazy_module_used_first_by_two_threads_at_once(tmp_path: Path) -> None:
    """The control room's notifier thread and its event loop may both touch httpx first:
    the second user waits for the one load instead of seeing a half-executed module (the
    standard library's LazyLoader, before Python 3.12, marked the module loaded first and
    then executed it, so a second thread read attributes not defined yet)."""
    (tmp_path / "slow_to_import.py").write_text(
        "import builtins\n"
        "builtins.entered.set()\n"
        "builtins.gate.wait(30)  # the test holds the import here while a second thread asks\n"
        "VALUE = 1\n"
    )
    code = (
        "import builtins, json, sys, threading\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from backend.lazy import lazy_module\n"
        "builtins.entered, builtins.gate = threading.Event(), threading.Event()\n"
        "m = lazy_module('slow_to_import')\n"
        "seen = {}\n"
        "def use(who):\n"
        "    try:\n"
        "        seen[who] = m.VALUE\n"
        "    except Exception as exc:\n"
        "        seen[who] = type(exc).__name__\n"
        "first = threading.Thread(target=use, args=('first',))\n"
        "first.start()\n"
        "assert builtins.entered.wait(30)\n"
        "second = threading.Thread(target=use, args=('second',))\n"
        "second.start()\n"
        "second.join(0.3)  # a second user that fails does so at once; one that waits is here\n"
        "builtins.gate.set()\n"
        "first.join(30); second.join(30)\n"
        "print(json.dumps(seen, sort_keys=True))\n"
    )
    assert printed_by(code) == {"first": 1, "second": 1}
