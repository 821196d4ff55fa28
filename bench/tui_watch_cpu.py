"""CPU used by `portal-ops watch` while it follows a deployment with live graphs.

A writer thread plays a deployment into the journal in real time (9 phases, a metric
sample per second for the total and each of 3 hosts, step output at --lines-per-second,
an incident now and then) while `portal-ops watch` runs in a 120x36 pseudo-terminal whose
output this script reads (and counts: bytes/s is what a slow SSH link must carry).
Reported: the watcher's CPU (utime+stime over wall time, % of one core), terminal bytes/s
and RSS, at the default refresh and at --fps 10. Run by hand:

    python bench/tui_watch_cpu.py [--seconds 30] [--lines-per-second 20]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tui_first_frame import PORTAL_OPS, Terminal, environment, write_sandbox

from backend.events import Event, Kind
from backend.journal import Journal

PHASES = (
    "validate-pre", "backup", "flags-prepare", "code", "database", "switch",
    "validate-post", "rollout", "finalize",
)  # fmt: skip
HOSTS = ("web-1", "web-2", "web-3")


def play(journal_path: Path, seconds: float, lines_per_second: float, stop: threading.Event) -> int:
    """Write a deployment into the journal in real time; returns the events written."""
    journal = Journal(journal_path)
    dep = f"bench-{int(time.time())}"
    written = 0

    def emit(kind: Kind, **kw: object) -> None:
        nonlocal written
        data = kw.pop("data", {})
        journal.record(Event(kind=kind.value, data=data, **kw))  # type: ignore[arg-type]
        written += 1

    emit(Kind.DEPLOYMENT_STARTED, deployment_id=dep,
         data={"revision": "bench", "release": dep, "hosts": list(HOSTS),
               "operator": {"user": "bench", "host": "local"}})  # fmt: skip
    start = time.monotonic()
    phase_len = seconds / len(PHASES)
    phase_index = -1
    next_sample = start
    next_line = start
    line = 0
    while not stop.is_set():
        now = time.monotonic()
        elapsed = now - start
        if elapsed >= seconds:
            break
        index = min(len(PHASES) - 1, int(elapsed / phase_len))
        if index != phase_index:
            if phase_index >= 0:
                emit(Kind.PHASE_FINISHED, deployment_id=dep, phase=PHASES[phase_index],
                     data={"status": "succeeded", "seconds": phase_len})  # fmt: skip
            phase_index = index
            emit(Kind.PHASE_STARTED, deployment_id=dep, phase=PHASES[index],
                 data={"number": index + 1, "title": PHASES[index]})  # fmt: skip
            if index == 5:
                emit(Kind.INCIDENT, deployment_id=dep,
                     data={"severity": "warning", "message": "p95 above target"})  # fmt: skip
        if now >= next_sample:
            wave = math.sin(elapsed / 5)
            sample = {"p50": 90 + 10 * wave, "p95": 170 + 30 * wave, "p99": 260 + 40 * wave,
                      "error_rate": 0.001 + 0.0005 * wave, "rps": 140 + 20 * wave}  # fmt: skip
            emit(Kind.METRIC_SAMPLE, run="monitor", data=sample)
            for host in HOSTS:
                emit(Kind.METRIC_SAMPLE, run="monitor", host=host, data=sample)
            next_sample += 1.0
        while now >= next_line:
            host = HOSTS[line % len(HOSTS)]
            emit(Kind.STEP_OUTPUT, deployment_id=dep, phase=PHASES[phase_index], host=host,
                 data={"stream": "stdout", "line": f"output line {line} of the bench"})  # fmt: skip
            line += 1
            next_line += 1.0 / lines_per_second
        time.sleep(0.01)
    emit(Kind.PHASE_FINISHED, deployment_id=dep, phase=PHASES[-1], data={"status": "succeeded"})
    emit(Kind.DEPLOYMENT_FINISHED, deployment_id=dep, data={"outcome": "succeeded"})
    journal.close()
    return written


def run_case(config: Path, journal: Path, extra: list[str], args: argparse.Namespace) -> str:
    term = Terminal(
        [PORTAL_OPS, "watch", "--config", str(config), *extra], environment(), (120, 36)
    )
    try:
        term.wait_for(b"[1] Phases", timeout=60)
        term.drain(1.0)
        stop = threading.Event()
        count: list[int] = []
        writer = threading.Thread(
            target=lambda: count.append(play(journal, args.seconds, args.lines_per_second, stop))
        )
        cpu0, bytes0, t0 = term.cpu_seconds(), term.bytes, time.perf_counter()
        writer.start()
        term.drain(args.seconds)
        cpu1, bytes1, t1 = term.cpu_seconds(), term.bytes, time.perf_counter()
        stop.set()
        writer.join()
        rss = term.rss_mb()
    finally:
        term.stop()
    wall = t1 - t0
    events = count[0] if count else 0
    label = "watch " + (" ".join(extra) or "(defaults: 60 fps cap, graphs every 1 s)")
    return (
        f"{label:<48} CPU {100 * (cpu1 - cpu0) / wall:5.1f}% of a core   "
        f"terminal {(bytes1 - bytes0) / wall / 1024:6.1f} KiB/s   RSS {rss:5.1f} MiB   "
        f"({events / wall:.0f} events/s for {wall:.0f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--lines-per-second", type=float, default=20.0)
    args = parser.parse_args(argv)
    cases = [[], ["--fps", "10"], ["--fps", "2", "--refresh", "2"]]  # the last: a slow link
    for extra in cases:
        with tempfile.TemporaryDirectory(prefix="portal-ops-bench-") as tmp:
            config = write_sandbox(Path(tmp), stage=None)
            journal = Path(tmp) / "state" / "journal.db"
            Journal(journal).close()
            print(run_case(config, journal, extra, args), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
