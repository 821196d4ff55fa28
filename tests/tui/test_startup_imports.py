"""What the control room's first frame must not wait for: the heavy libraries that only a
deployment, a notification or a live sample needs (their imports cost ~0.5 s of CPU), the
engine (built once the first frame is painted), the screens and dialogs no key has opened
yet, and plotext (the graphs are mounted once the first frame is painted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LATER = ("asyncssh", "httpx", "redis", "prometheus_client", "jinja2", "apprise")
# the room's own modules and backend modules its first frame does not need
LATER_ROOM = (
    "backend.engine",
    "tui.screens.confirm",
    "tui.screens.flags",
    "tui.screens.help",
    "tui.screens.host",
    "tui.screens.detail",
    "plotext",
    "textual_plotext",
)

BUILD_ROOM = """
import json, sys
from tests.tui import recorded
import tui.app
from backend.journal import Journal
config = recorded.config()
journal = Journal(sys.argv[1])
room = tui.app.make_room(config, journal=journal)
room.check_action("emergency_disable", ())  # what the footer asks on the first frame
room.check_action("deploy", ())
names = %r
print(json.dumps(sorted(m for m in sys.modules if m in names or m.split(".")[0] in names)))
"""


def _imported(tmp_path: Path, names: tuple[str, ...]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", BUILD_ROOM % (names,), str(tmp_path / "journal.db")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    found: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def test_building_the_room_imports_no_deploy_time_library(tmp_path: Path) -> None:
    assert _imported(tmp_path, LATER) == []


def test_building_the_room_imports_neither_the_engine_nor_later_screens(tmp_path: Path) -> None:
    assert _imported(tmp_path, LATER_ROOM) == []


def test_the_ui_command_loads_no_config_model_before_its_first_frame() -> None:
    """`portal-ops ui` parses the config after its first frame: the command, the room and
    their modules import neither backend.config nor backend.schema."""
    code = (
        "import sys, tui.cli, tui.commands.ui, tui.app, tui.startup; "
        "print(sorted(m for m in ('backend.config', 'backend.schema') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
