"""What the hosts pay for one deployment: every process they start for it, by phase and by
program, and the CPU of the sshd tree.

Runs a first deployment (untimed) and then an upgrade of N hosts (or, with ``--rollback``,
an upgrade untimed and the rollback from it), with the side-by-side bench's config (every
host at once, checks skipped unless ``--checks``), against one loopback sshd.
With ``--strace`` (needs ``strace``) the sshd is traced during the upgrade
(``strace -f -e trace=execve``) and each exec is counted against the phase in flight and
its program; without it, the upgrade runs untraced and the host CPU is the sshd listener's
reaped children's (cutime + cstime) before and after. Run by hand::

    .venv/bin/python bench/host_cost.py [--hosts 10] [--strace] [--checks] [--rollback]
        [--reps 3]

``HOSTCOST_SHOW=1`` also prints each phase's result as it finishes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_EXEC = re.compile(r'^(\d+)\s+(\d+\.\d+) execve\("([^"]+)", \[(.*?)\]')


def children_cpu(pid: int) -> float:
    """Seconds of CPU of ``pid``'s reaped children (cutime + cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def wait_reaped(pid: int, timeout: float = 10.0) -> None:
    """Until the sshd listener has no session left (their CPU is then in its cutime)."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.Process(pid).children():
            return
        time.sleep(0.02)


def program(path: str, argv: str) -> str:
    name = path.rsplit("/", 1)[-1]
    words = re.findall(r'"((?:[^"\\]|\\.)*)"', argv)
    if name == "git" and len(words) > 1:
        sub = next((w for w in words[1:] if not w.startswith("-")), "")
        return f"git {sub}"
    if name in ("sh", "bash", "dash") and len(words) > 1 and words[1] == "-c":
        body = words[2] if len(words) > 2 else ""
        if "setsid" in body and "portal-ops" in " ".join(words[3:4]):
            return f"{name} (wrapper)"
        return f"{name} -c"
    return name


async def run(args: argparse.Namespace, work: Path) -> None:
    from backend.config import parse_config
    from backend.engine import Engine
    from backend.journal import Journal
    from tests.engine.helpers import make_repo, ssh_config
    from tests.fixtures.sshd import SSHServer

    repo = make_repo(work)
    with SSHServer(work / "sshd").start() as sshd:
        pid = int((sshd.root / "sshd.pid").read_text())
        for rep in range(args.reps):
            base = work / f"fleet-{rep}"
            cfg = ssh_config(sshd, base, repo, hosts=args.hosts)
            cfg["rollout"] = {
                "batches": ["1", "100%"],
                "drain_seconds": 0,
                "concurrency": args.hosts,
            }
            cfg["ssh"]["max_connections"] = min(args.hosts, 100)

            def engine(cfg: dict[str, Any] = cfg) -> Engine:
                config = parse_config(cfg)
                return Engine(config, journal=Journal(Path(config.state.dir) / "journal.db"))

            first = await engine().deploy(revision="v1", skip_validation=True)
            assert first.ok, first.error
            if args.rollback:  # the upgrade untimed, then the rollback from it measured
                second = await engine().deploy(revision="v2", skip_validation=True)
                assert second.ok, second.error
            wait_reaped(pid)
            phases: list[tuple[float, str]] = []
            eng = engine()

            def on_event(event: Any, phases: list[tuple[float, str]] = phases) -> None:
                if event.kind == "phase.finished" and os.environ.get("HOSTCOST_SHOW"):
                    print("   ", event.phase, event.data.get("seconds"), event.data.get("detail"))
                if event.kind == "phase.started":
                    phases.append((time.time(), event.phase or ""))

            eng.bus.subscribe(on_event)
            trace = work / f"strace-{rep}"
            tracer = None
            if args.strace:
                tracer = subprocess.Popen(
                    [
                        "strace",
                        "-f",
                        "-z",
                        "-ttt",
                        "-qq",
                        "-s",
                        "300",
                        "-e",
                        "trace=execve",
                        "-o",
                        str(trace),
                        "-p",
                        str(pid),
                    ],
                    stderr=subprocess.DEVNULL,
                )
                await asyncio.sleep(0.5)
            cpu_before = children_cpu(pid)
            started = time.perf_counter()
            if args.rollback:
                undone = await eng.rollback(None, "bench")
                wall = time.perf_counter() - started
                assert undone.outcome == "succeeded", undone.outcome
            else:
                result = await eng.deploy(revision="v2", skip_validation=not args.checks)
                wall = time.perf_counter() - started
                assert result.ok, result.error
            wait_reaped(pid)
            cpu = children_cpu(pid) - cpu_before
            if tracer is not None:
                await asyncio.sleep(0.3)
                tracer.terminate()
                tracer.wait()
                report(trace, phases)
                if args.keep:
                    shutil.copy(trace, args.keep)
            marks = [*phases, (time.time(), "")]
            spans = ", ".join(
                f"{name} {end - start:.2f}"
                for (start, name), (end, _) in pairwise(marks)
                if end - start >= 0.005
            )
            print(f"  phases (s): {spans}")
            print(
                f"rep {rep}: {'rollback' if args.rollback else 'upgrade'} {args.hosts} hosts:"
                f" {wall:.2f} s, host CPU {cpu:.2f} s"
                f"{' (traced)' if tracer else ''}"
            )


def report(trace: Path, phases: list[tuple[float, str]]) -> None:
    by_phase: Counter[str] = Counter()
    by_program: Counter[str] = Counter()
    both: Counter[tuple[str, str]] = Counter()
    for line in trace.read_text(errors="replace").splitlines():
        found = _EXEC.match(line)
        if not found or "= -1" in line:
            continue
        at = float(found.group(2))
        phase = "(before)"
        for start, name in phases:
            if at >= start:
                phase = name
        prog = program(found.group(3), found.group(4))
        by_phase[phase] += 1
        by_program[prog] += 1
        both[(phase, prog)] += 1
    print(f"processes started on the hosts: {sum(by_phase.values())}")
    order = [name for _, name in phases]
    for phase in sorted(by_phase, key=lambda p: order.index(p) if p in order else -1):
        progs = ", ".join(f"{p} {n}" for (ph, p), n in both.most_common() if ph == phase)
        print(f"  {phase:15s} {by_phase[phase]:5d}: {progs}")
    print("by program: " + ", ".join(f"{p} {n}" for p, n in by_program.most_common()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--strace", action="store_true")
    parser.add_argument("--checks", action="store_true")
    parser.add_argument("--rollback", action="store_true", help="measure a rollback instead")
    parser.add_argument("--keep", default="", help="copy the strace output there")
    args = parser.parse_args()
    if args.strace and not shutil.which("strace"):
        parser.error("--strace: strace is not installed (apt-get install strace)")
    os.environ.setdefault("PORTAL_OPS_OPERATOR", "bench")
    work = Path(tempfile.mkdtemp(prefix="portal-ops-hostcost-"))
    try:
        asyncio.run(run(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
