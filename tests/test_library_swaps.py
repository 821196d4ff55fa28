"""Hand-written code replaced by maintained libraries: the demo's TOML writer (tomli-w) and
process liveness (psutil), checked on real files and real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib

from backend.demo.sandbox import dump_toml
from backend.journal import process_alive


def test_toml_writer_round_trips_what_the_old_one_broke() -> None:
    data = {
        "portal": {"name": "démo", "env": {"KEY": "a\x7fb", "Ünïcode-key": "x"}},
        "hosts": [{"name": "web-1", "roles": ["web", "primary"], "port": 2222}],
        "rollout": {"batches": ["1", "50%"], "drain_seconds": 0.5},
        "monitor": {"sources": {"app": {"url": "http://127.0.0.1:1/"}}},
    }
    assert tomllib.loads(dump_toml(data)) == data


def test_process_alive_for_running_gone_and_zombie_processes() -> None:
    assert process_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    # exited but not reaped: a zombie, which os.kill(pid, 0) would call alive
    while process_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not process_alive(child.pid)
    assert child.poll() is not None  # reaped only now
    assert not process_alive(child.pid)
    assert not process_alive(None) and not process_alive("x")
    assert process_alive(1)  # init: another user's, alive
