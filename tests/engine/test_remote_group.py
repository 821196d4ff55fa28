"""Remote commands die with their session in every window of their start, against a real
sshd: a timeout while the remote shell starts (before the group exists, before the wrapper
runs at all), a kill that reaches the host before the command's wrapper, a session whose
stdin closes at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend.transport import CommandTimeout
from backend.transport.remote_group import CANCELLED_EXIT, kill_pidfile, new_pidfile, wrap

from .faults import processes_with, ssh_host, unique_marker, wait_until


async def test_a_timeout_inside_the_remote_shells_start_is_killed(sshd, tmp_path: Path) -> None:
    """Timeouts from 1 ms to 50 ms fire while sshd forks the shell, while the wrapper claims
    its pid file, before or after ``setsid`` made the group: the command is dead when run()
    raises, and nothing of it starts later."""
    host = ssh_host(sshd)
    await host.connect()
    try:
        for i, timeout in enumerate((0.001, 0.003, 0.005, 0.01, 0.02, 0.03, 0.05) * 3):
            marker = unique_marker(f"start-{i}")
            with pytest.raises(CommandTimeout, match="killed on the host"):
                await host.run(f"sh -c 'sleep 30' {marker}", timeout=timeout)
            assert not processes_with(f"sleep 30 {marker}"), f"alive after a {timeout}s timeout"
            # the wrapper (its argv holds the marker) ends too, and starts nothing on its way
            await wait_until(lambda m=marker: not processes_with(m), 10, f"wrapper {timeout}s")
    finally:
        await host.close()


async def test_a_kill_before_the_wrapper_starts_cancels_it(sshd, tmp_path: Path) -> None:
    """The kill claims the pid file's name first: the wrapper that arrives later never
    starts its command, so "confirmed dead" holds even before the command existed."""
    host = ssh_host(sshd)
    await host.connect()
    try:
        pidfile = new_pidfile("dep.deploy-x")
        started = tmp_path / "started"
        await host._raw(kill_pidfile(pidfile))
        proc = await host._conn.create_process(wrap(f"touch {started}", pidfile))  # type: ignore[union-attr]
        await proc.wait_closed()
        assert proc.exit_status == CANCELLED_EXIT
        assert "cancelled before it started" in str(await proc.stderr.read())
        assert not started.exists()
    finally:
        await host.close()


async def test_stdin_closed_at_once_kills_the_group_it_races(sshd, tmp_path: Path) -> None:
    """End-of-file on the session's stdin as the wrapper starts (a portal-ops killed just
    after sending the command): the watcher may run before ``setsid`` made the group; the
    command must die all the same."""
    host = ssh_host(sshd)
    await host.connect()
    try:
        for i in range(10):
            marker = unique_marker(f"eof-{i}")
            command = wrap(f"sh -c 'sleep 30' {marker}", new_pidfile("dep.deploy-y"))
            proc = await host._conn.create_process(command)  # type: ignore[union-attr]
            proc.stdin.write_eof()
            await asyncio.wait_for(proc.wait_closed(), 10)
            await wait_until(lambda m=marker: not processes_with(m), 10, "group killed")
    finally:
        await host.close()
