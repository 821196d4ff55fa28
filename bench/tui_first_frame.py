"""Time from launch to the control room's first painted frame, in a real pseudo-terminal.

`portal-ops ui` (operator room: engine built, no host contacted) and `portal-ops watch`
are started under a pty of 120x36 on a journal holding the recorded mid-deployment
(tests/tui/recorded.py). The clock runs from fork to the moment the terminal receives
(1) the first frame with the panes ("[1] Phases") and (2) the frame showing the replayed
deployment (its id in the header). Best and median of N runs; run by hand:

    python bench/tui_first_frame.py [--runs 5]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PORTAL_OPS = str(Path(sys.executable).with_name("portal-ops"))


def write_sandbox(directory: Path, stage: str | None = "mid") -> Path:
    """A config (local hosts, never contacted) and a journal with the recorded events."""
    from backend.journal import Journal
    from tests.tui import recorded

    state = directory / "state"
    state.mkdir(parents=True, exist_ok=True)
    config = directory / "portal-ops.toml"
    hosts = "\n".join(
        f'[[hosts]]\nname = "{h}"\naddress = "127.0.0.1"\ntransport = "local"\n'
        for h in recorded.HOSTS
    )
    config.write_text(
        "[portal]\n"
        'name = "business-portal"\n'
        'repository = "/srv/git/business-portal.git"\n'
        'deploy_path = "/var/www/business-portal"\n\n'
        f"{hosts}\n"
        f'[state]\ndir = "{state}"\n'
    )
    if stage:
        journal = Journal(state / "journal.db")
        recorded.write_journal(journal, recorded.deployment(stage))
        journal.close()
    return config


class Terminal:
    """A child process on a pty of a fixed size; its output is read (and counted) by us."""

    def __init__(self, argv: list[str], env: dict[str, str], size: tuple[int, int]) -> None:
        self.started = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:  # the child
            os.execvpe(argv[0], argv, env)
        self.pid, self.fd = pid, fd
        cols, rows = size
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.buffer = b""
        self.bytes = 0

    def read(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return b""
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            return b""
        self.bytes += len(data)
        self.buffer = (self.buffer + data)[-200_000:]
        return data

    def wait_for(self, needle: bytes, timeout: float = 30.0) -> float:
        """Seconds from launch until ``needle`` has been written to the terminal."""
        deadline = time.perf_counter() + timeout
        while needle not in self.buffer:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{needle!r} not seen in {timeout}s")
            self.read(0.05)
        return time.perf_counter() - self.started

    def drain(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            self.read(min(0.1, end - time.perf_counter()))

    def cpu_seconds(self) -> float:
        """utime + stime of the child so far (from /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        end = time.perf_counter() + 5
        while time.perf_counter() < end:
            self.read(0.05)
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if done:
                break
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def environment(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"TERM": "xterm-256color", "COLORTERM": "truecolor", "TZ": "UTC"})
    env.pop("NO_COLOR", None)
    # this checkout's code, not the one the console script was installed from
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def measure(argv: list[str], marks: list[bytes], runs: int) -> list[list[float]]:
    """Seconds to each mark, then the child's CPU seconds by the first mark, per run."""
    results: list[list[float]] = [[] for _ in [*marks, "cpu"]]
    for _ in range(runs):
        term = Terminal(argv, environment(), (120, 36))
        try:
            for i, mark in enumerate(marks):
                results[i].append(term.wait_for(mark))
                if i == 0:
                    results[-1].append(term.cpu_seconds())
        finally:
            term.stop()
    return results


def report(label: str, values: list[float]) -> str:
    return (
        f"{label:<44} best {min(values) * 1000:6.0f} ms   median"
        f" {statistics.median(values) * 1000:6.0f} ms   (n={len(values)})"
    )


def import_time(module: str, runs: int) -> list[float]:
    import subprocess

    out = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, cwd=ROOT)
        out.append(time.perf_counter() - started)
    return out


def compile_sources() -> None:
    """Bytecode for this checkout, as an install has: with PYTHONDONTWRITEBYTECODE set (or a
    fresh checkout) every child would otherwise compile ~110 modules, ~0.45 s of CPU that
    no installed portal-ops pays."""
    import compileall

    for package in ("backend", "tui", "themes"):
        compileall.compile_dir(ROOT / package, quiet=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    compile_sources()
    from tests.tui.recorded import DEPLOY_ID

    lines = []
    with tempfile.TemporaryDirectory(prefix="portal-ops-bench-") as tmp:
        config = str(write_sandbox(Path(tmp)))
        cases: list[tuple[str, list[str]]] = [
            ("portal-ops ui", [PORTAL_OPS, "ui", "--config", config]),
            ("portal-ops watch", [PORTAL_OPS, "watch", "--config", config]),
        ]
        for label, cmd in cases:
            panes, data, cpu = measure(cmd, [b"[1] Phases", DEPLOY_ID.encode()], args.runs)
            lines.append(report(f"{label}: first frame (panes)", panes))
            lines.append(report(f"{label}: deployment shown (history)", data))
            lines.append(report(f"{label}: CPU used by the first frame", cpu))
    show: Callable[[str], None] = print
    lines.append(
        report("python -c 'import tui.app' (imports alone)", import_time("tui.app", args.runs))
    )
    show(f"load average {os.getloadavg()[0]:.1f}")
    for line in lines:
        show(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
