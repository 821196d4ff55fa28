"""Faults for the engine tests, made with real parts: portal-ops as a real process killed with
SIGKILL, sshd session processes killed (the link lost, the host's commands left alone), and
ways to tell whether a host still runs a command of an interrupted run."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from backend.events import Kind
from backend.journal import Journal
from backend.transport.ssh import SSHHost, SSHOptions

from .helpers import current


def write_toml(cfg: dict[str, Any], path: Path) -> Path:
    from backend.demo.sandbox import dump_toml

    path.write_text(dump_toml(cfg))
    return path


def ssh_host(sshd: Any, max_reconnects: int = 0, **options: Any) -> SSHHost:
    """One asyncssh host on the test sshd, host key checked, for transport-level tests;
    ``options``: other SSHOptions (another known_hosts, a config_file...)."""
    chosen: dict[str, Any] = {
        "known_hosts": str(sshd.known_hosts),
        "identity_files": [str(sshd.client_key)],
        "use_agent": False,
        "max_reconnects": max_reconnects,
        **options,
    }
    return SSHHost("h", sshd.host, sshd.port, sshd.user, options=SSHOptions(**chosen))


def unique_marker(what: str) -> str:
    """A word to find a test's remote processes by: unique machine-wide, since parallel
    workers run tests of the same name (and pytest cuts long tmp dir names alike)."""
    return f"mark-{what}-{secrets.token_hex(4)}"


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker`` (a run's leftovers)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                args = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open(f"/proc/{entry}/stat", "rb") as fh:
                state = fh.read().decode("utf-8", "replace").rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in args and state != "Z" and "pytest" not in args:
            found.append(int(entry))
    return found


async def wait_until(predicate: Any, timeout: float = 30.0, what: str = "") -> None:
    """Poll a condition with a deadline (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def kill_sshd_sessions(sshd: Any) -> int:
    """SIGKILL only sshd's own session processes: the TCP link drops, the commands they
    started are left to whatever the transport arranged (they must die with the session)."""
    killed = 0
    for pid in sshd.session_pids():
        try:
            with open(f"/proc/{pid}/comm") as fh:
                comm = fh.read().strip()
        except OSError:
            continue
        if comm.startswith("sshd"):
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def spawn_cli(config_file: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tui.cli", *args, "--config", str(config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_cli(config_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args, "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )


async def kill_when(
    proc: subprocess.Popen[str],
    journal_path: Path,
    match: Any,
    *,
    timeout: float = 60.0,
) -> str:
    """SIGKILL ``proc`` as soon as its journal holds an event ``match(event)`` accepts;
    returns the deployment id."""
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        if journal_path.exists():
            journal = Journal(journal_path)
            try:
                for event in journal.events(after_seq=seen):
                    seen = event.seq or seen
                    if match(event):
                        if proc.poll() is not None:
                            raise AssertionError(
                                f"portal-ops ended (code {proc.returncode}) before the fault"
                            )
                        os.kill(proc.pid, signal.SIGKILL)
                        proc.wait(timeout=10)
                        return event.deployment_id or ""
            finally:
                journal.close()
        if proc.poll() is not None:
            raise AssertionError(f"portal-ops ended before the fault: {proc.stdout.read()[-3000:]}")  # type: ignore[union-attr]
        await asyncio.sleep(0.02)
    proc.kill()
    raise AssertionError("the fault point was never reached")


def step_started(step: str, host: str | None = None, run: str = "deploy") -> Any:
    return lambda e: (
        e.kind == Kind.STEP_STARTED
        and e.run == run
        and e.data.get("step") == step
        and (host is None or e.host == host)
    )


def phase_started(number: int, run: str = "deploy") -> Any:
    return lambda e: (
        e.kind == Kind.PHASE_STARTED and e.run == run and e.data.get("number") == number
    )


def phase_finished(number: int, run: str = "deploy") -> Any:
    from backend.phases import DEPLOY_PHASES, ROLLBACK_PHASES

    name = (DEPLOY_PHASES if run == "deploy" else ROLLBACK_PHASES)[number - 1][0]
    return lambda e: e.kind == Kind.PHASE_FINISHED and e.run == run and e.phase == name


def converged(root: Path, hosts: tuple[str, ...]) -> tuple[bool, str]:
    """One release on every host and no lock left: (ok, why not)."""
    releases = {current(root, h) for h in hosts}
    locks = [h for h in hosts if (root / h / ".portal-ops" / "lock").exists()]
    if len(releases) != 1:
        return False, f"hosts on {releases}"
    if locks:
        return False, f"lock left on {locks}"
    return True, ""
