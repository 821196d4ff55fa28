"""What the control room's first frame must not wait for: the heavy libraries that only a
deployment, a notification or a live sample needs (their imports cost ~0.5 s of CPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LATER = ("asyncssh", "httpx", "redis", "prometheus_client", "jinja2", "apprise")

BUILD_ROOM = """
import json, sys
from backend.config import Config
from tests.tui import recorded
import tui.app
from backend.engine import Engine
from backend.journal import Journal
config = recorded.config()
journal = Journal(sys.argv[1])
room = tui.app.OperatorRoom(config, engine=Engine(config, journal=journal))
room.check_action("emergency_disable", ())  # what the footer asks on the first frame
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in %r)))
"""


def test_building_the_room_imports_no_deploy_time_library(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", BUILD_ROOM % (LATER,), str(tmp_path / "journal.db")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
