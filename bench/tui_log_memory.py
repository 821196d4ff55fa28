"""Memory of the control room after 10,000 incident lines (and that it stays bounded).

Two measures, each in a fresh process:

1. the room (headless, 120x36) replaying a recorded deployment with N step-output lines
   from a real journal: RSS once the log shows them, against N = 0; and the time to
   ingest them (journal read, reducer, bridge, log);
2. the incident-log widget alone: Python allocations (tracemalloc) held by 10,000
   appended lines, and by 50,000 with the default bound of 10,000 kept.

    python bench/tui_log_memory.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD_ROOM = r"""
import asyncio, json, os, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
os.environ["TEXTUAL_ANIMATIONS"] = "none"
from tests.tui.recorded import build_room, deployment, write_journal
from backend.journal import Journal

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

async def main():
    path = Path({path!r})
    journal = Journal(path)
    write_journal(journal, deployment("done", log_lines={lines}))
    journal.close()
    app = build_room(path, None, watch=True)
    before = rss()
    async with app.run_test(size=(120, 36)) as pilot:
        started = time.perf_counter()
        await app.wait_caught_up(timeout=600)
        await pilot.pause()
        took = time.perf_counter() - started
        log = app.room.log_widget
        print(json.dumps({{"lines": log.total, "rss": rss(), "rss_start": before, "seconds": took}}))

asyncio.run(main())
"""

CHILD_WIDGET = r"""
import json, sys, tracemalloc
sys.path.insert(0, {root!r})
from tui.state import LogLine
from tui.widgets.incident_log import IncidentLog
log = IncidentLog(max_lines=10_000)
tracemalloc.start()
base = tracemalloc.take_snapshot()
log.append(LogLine(1754013600.0 + i, "debug", "web-1",
                   f"  - Installing vendor/package-{{i:05d}} (v2.{{i % 7}}.0)") for i in range({lines}))
held = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(base, "filename"))
print(json.dumps({{"lines": log.total, "bytes": held}}))
"""


def child(code: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TZ": "UTC"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="portal-ops-bench-") as tmp:
        results = {}
        for lines in (0, 10_000):
            path = str(Path(tmp) / f"journal-{lines}.db")
            started = time.perf_counter()
            results[lines] = child(CHILD_ROOM.format(root=str(ROOT), path=path, lines=lines))
            results[lines]["wall"] = time.perf_counter() - started
        base, full = results[0], results[10_000]
        print(
            f"room, recorded deployment, no extra lines:   RSS {base['rss']:6.1f} MiB"
            f"   ({int(base['lines'])} log lines)"
        )
        print(
            f"room, + 10,000 step-output lines:            RSS {full['rss']:6.1f} MiB"
            f"   ({int(full['lines'])} log lines; +{full['rss'] - base['rss']:.1f} MiB;"
            f" replayed and shown in {full['seconds']:.2f} s)"
        )
    for lines in (10_000, 50_000):
        got = child(CHILD_WIDGET.format(root=str(ROOT), lines=lines))
        print(
            f"incident log widget, {lines:>6,} lines appended:   {got['bytes'] / 1024 / 1024:6.2f} MiB"
            f" held by Python ({int(got['lines']):,} kept; bound 10,000 + 5 %)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
