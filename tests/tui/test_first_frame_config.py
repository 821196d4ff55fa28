"""`portal-ops ui` paints its first frame before it parses the config (the models' import
and the parse were ~0.15 s of CPU before it): that frame says LOADING, never shows a
deployment or "idle" it does not know yet; a bad config still ends with exit 2 and the
message every other command prints for it, once the terminal is given back."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from backend.journal import Journal
from tests.tui import recorded
from tests.tui.conftest import until
from tui.app import make_room
from tui.settle import settled
from tui.widgets.header import DeployHeader
from tui.widgets.hoststrip import HostStrip
from tui.widgets.tables import HostTable

ROOT = Path(__file__).resolve().parents[2]


async def test_the_first_frame_says_loading_then_the_config_fills_the_room(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "journal.db")
    recorded.write_journal(journal, recorded.deployment("mid"))
    seen: dict[str, Any] = {}

    def load() -> Any:  # what the first frame showed is on screen while this runs
        header = app.room.query_one(DeployHeader)
        seen["header"] = str(header.render())
        seen["painted"] = app.screen is app.room and app.room.is_mounted
        seen["deploy"] = app.unavailable("deploy")
        seen["hosts"] = str(app.room.query_one(HostTable).border_subtitle)
        seen["strip"] = str(app.room.query_one(HostStrip).render())
        return recorded.config()

    app = make_room(
        None,
        config_loader=load,
        journal=journal,
        load_flags=False,
        live_health=False,
        clock=lambda: recorded.T0 + 60,
    )
    async with app.run_test(size=(120, 36)) as pilot:
        await until(lambda: app.state.deployment is not None, 10)
        await settled(pilot)  # the start-up work after the history, too
        shown = str(app.room.query_one(DeployHeader).render())
        hosts = [h.name for h in app.state.hosts]
    assert seen["painted"], seen
    assert "LOADING" in seen["header"] and "loading configuration" in seen["header"]
    # nothing is claimed before the config is known: no deployment, no "idle", no counts
    assert recorded.DEPLOY_ID not in seen["header"] and "IDLE" not in seen["header"]
    assert seen["deploy"] == "the configuration is still loading"
    assert seen["hosts"] == "loading configuration…"  # not "0" hosts
    assert "loading configuration" in seen["strip"] and "none" not in seen["strip"]
    assert recorded.DEPLOY_ID in shown and "LOADING" not in shown
    assert hosts == list(recorded.HOSTS)


async def test_a_watcher_loads_its_config_and_picks_its_feed_after_the_first_frame(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "journal.db")
    recorded.write_journal(journal, recorded.deployment("mid"))
    seen: dict[str, str] = {}

    def load() -> Any:
        seen["header"] = str(app.room.query_one(DeployHeader).render())
        return recorded.config()

    app = make_room(
        None,
        watch=True,
        config_loader=load,
        journal=journal,
        source="auto",
        live_health=False,
        clock=lambda: recorded.T0 + 60,
    )
    async with app.run_test(size=(120, 36)) as pilot:
        await until(lambda: app.state.deployment is not None, 10)
        await settled(pilot)
        shown = str(app.room.query_one(DeployHeader).render())
    assert "WATCH · READ-ONLY" in seen["header"] and "LOADING" in seen["header"]
    assert "READ-ONLY (journal)" in shown and recorded.DEPLOY_ID in shown


def _run_in_a_terminal(argv: list[str], timeout: float = 20.0) -> tuple[int, str]:
    """Run ``argv`` on a pty of 100x30; its exit code and everything it wrote."""
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": str(ROOT)}
    env.pop("NO_COLOR", None)
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(ROOT)
        os.execvpe(argv[0], argv, env)
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            output += data
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_a_bad_config_still_exits_2_with_the_same_message(tmp_path: Path) -> None:
    config = tmp_path / "portal-ops.toml"
    config.write_text(
        '[portal]\nname = "business-portal"\nrepository = "/srv/git/bp.git"\n'
        'deploy_path = "/var/www/bp"\n\n[[hosts]]\nname = "web-1"\naddress = "127.0.0.1"\n\n'
        "[rollout]\nbatches = []\n"
    )
    state = {"PORTAL_OPS_STATE_DIR": str(tmp_path / "state")}
    # what every other command says about this config
    other = subprocess.run(
        [sys.executable, "-m", "tui.cli", "history", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **state},
    )
    assert other.returncode == 2 and "rollout.batches" in other.stderr, other.stderr
    os.environ.update(state)
    try:
        code, output = _run_in_a_terminal(
            [sys.executable, "-m", "tui.cli", "ui", "--config", str(config)]
        )
    finally:
        for key in state:
            os.environ.pop(key)
    assert code == 2, output
    assert "LOADING" in output  # the first frame came first
    # printed once the room gave the terminal back (after its last escape sequence)
    tail = output.rsplit("\x1b", 1)[-1].replace("\r\n", "\n")
    message = other.stderr.strip()
    assert message in tail, (message, tail)


def test_a_bad_key_map_in_the_config_exits_2_naming_the_binding(tmp_path: Path) -> None:
    config = tmp_path / "portal-ops.toml"
    config.write_text(
        '[portal]\nname = "business-portal"\nrepository = "/srv/git/bp.git"\n'
        'deploy_path = "/var/www/bp"\n\n[[hosts]]\nname = "web-1"\naddress = "127.0.0.1"\n\n'
        f'[state]\ndir = "{tmp_path / "state"}"\n\n[ui.keys]\nno-such-action = "x"\n'
    )
    code, output = _run_in_a_terminal(
        [sys.executable, "-m", "tui.cli", "ui", "--config", str(config)]
    )
    assert code == 2, output
    tail = output.rsplit("\x1b", 1)[-1]
    assert "portal-ops:" in tail and "no-such-action" in tail, tail


def test_watch_an_unknown_deployment_exits_2_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "portal-ops.toml"
    config.write_text(
        '[portal]\nname = "business-portal"\nrepository = "/srv/git/bp.git"\n'
        'deploy_path = "/var/www/bp"\n\n[[hosts]]\nname = "web-1"\naddress = "127.0.0.1"\n\n'
        f'[state]\ndir = "{tmp_path / "state"}"\n'
    )
    code, output = _run_in_a_terminal(
        [sys.executable, "-m", "tui.cli", "watch", "bp-nope", "--config", str(config)]
    )
    assert code == 2, output
    tail = output.rsplit("\x1b", 1)[-1]
    assert "portal-ops: unknown deployment id 'bp-nope'" in tail, tail


async def test_the_first_frame_is_painted_in_the_config_files_theme(tmp_path: Path) -> None:
    """`[ui] theme` is read from the file with tomllib before the first frame, so the room
    does not open in the default theme and switch a moment later; the parsed config (an
    overlay may change it) has the last word."""
    from tui.commands.ui import _theme_hint

    toml = tmp_path / "portal-ops.toml"
    toml.write_text('[portal]\nname = "p"\n\n[ui]\ntheme = "portal-light"\n')
    assert _theme_hint(str(toml)) == "portal-light"
    for text in ('[ui]\ntheme = "no-such-theme"\n', "[ui\n", "[ui]\ntheme = 3\n", "ui = 1\n"):
        toml.write_text(text)
        assert _theme_hint(str(toml)) is None, text  # the parse after the first frame says why
    assert _theme_hint(str(tmp_path / "missing.toml")) is None

    seen: dict[str, str] = {}

    def load() -> Any:
        seen["theme"] = app.theme
        config = recorded.config()
        config.ui.theme = "ansi-dark"  # what an overlay set: the parsed config wins
        return config

    journal = Journal(tmp_path / "journal.db")
    app = make_room(
        None,
        config_loader=load,
        journal=journal,
        first_theme="portal-light",
        load_flags=False,
        live_health=False,
        clock=lambda: recorded.T0 + 60,
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await until(lambda: app.config is not None, 10)
        await settled(pilot)
        after = app.theme
    assert seen["theme"] == "portal-light"
    assert after == "ansi-dark"
