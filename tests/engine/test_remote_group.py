"""Remote commands die with their session in every window of their start, against a real
sshd: a timeout while the remote shell starts (before the group exists, before the wrapper
runs at all), a kill that reaches the host before the command's wrapper, a session whose
stdin closes at once."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from backend.transport import CommandTimeout
from backend.transport.remote_group import (
    CANCELLED_EXIT,
    kill_pidfile,
    kill_tagged,
    new_pidfile,
    parse_left,
    wrap,
)

from .faults import processes_with, ssh_host, unique_marker, wait_until
from .test_remote_cost import only_on_path


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


def run_dir(tmpdir: Path | None = None) -> Path:
    """The run dir of this uid under ``tmpdir`` (default: the shared one of ``$TMPDIR``)."""
    base = tmpdir or Path(os.environ.get("TMPDIR", "/tmp"))
    return base / f"portal-ops-run-{os.getuid()}"


def private_tmpdir(tmp_path: Path) -> tuple[Path, str]:
    """A ``TMPDIR`` of the test's own, and the command prefix that sets it on the host: a
    sweep by another test's command (the run dir is shared machine-wide) cannot remove
    what the test looks at."""
    folder = tmp_path / "tmpdir"
    folder.mkdir(exist_ok=True)
    return folder, f"export TMPDIR={folder}; "


def finished_pid_files(prefix: str, count: int, tmpdir: Path | None = None) -> list[Path]:
    """``count`` pid files of finished commands (``done``), named ``prefix.<hex>.pid``."""
    folder = run_dir(tmpdir)
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"{prefix}.{i:08x}.pid" for i in range(1, count + 1)]
    for file in files:
        file.write_text("done\n")
    return files


async def test_the_wrapper_leading_its_session_needs_no_setsid_and_no_rm(
    sshd, tmp_path: Path
) -> None:
    """sshd starts each session's command in a session of its own, which the wrapper leads:
    with neither ``setsid`` nor ``rm`` on PATH the command runs, its pid file ends ``done``,
    and end-of-file on stdin still kills the command and what it started in the background;
    the command sees none of the wrapper's functions, variables or arguments."""
    path = only_on_path(tmp_path, "sh", "mkdir", "sleep", "touch")
    tmpdir, private = private_tmpdir(tmp_path)
    host = ssh_host(sshd)
    await host.connect()
    try:
        assert host._conn is not None
        pidfile = new_pidfile("dep.lead-a")
        seen = (
            'printf "[%s|%s|%s|%s|%s|%s]" "$#" "${c-}" "${f-}" "${d-}" "${g-}" "${p-}"; '
            "command -v stop alive sweep || true"
        )
        proc = await host._conn.create_process(
            f"{private}export PATH={path}; " + wrap(seen, pidfile)
        )
        await asyncio.wait_for(proc.wait_closed(), 10)
        assert proc.exit_status == 0, await proc.stderr.read()
        assert await proc.stdout.read() == "[0|||||]"
        name = pidfile.rsplit("/", 1)[1]
        assert (run_dir(tmpdir) / name).read_text() == "done\n"

        marker = unique_marker("lead")
        pidfile = new_pidfile(f"dep.lead-{marker}")
        proc = await host._conn.create_process(
            private + wrap(f"sh -c 'sleep 30' {marker} & sh -c 'sleep 30' {marker}-2; :", pidfile)
        )
        await wait_until(lambda: len(processes_with(f"sleep 30 {marker}")) == 2, 10, "started")
        mine = run_dir(tmpdir) / pidfile.rsplit("/", 1)[1]
        claim = mine.read_text().split()
        assert claim[0] == claim[1], "the wrapper should lead the session's group"
        proc.stdin.write_eof()
        await asyncio.wait_for(proc.wait_closed(), 10)
        await wait_until(lambda: not processes_with(marker), 10, "group killed")
        await wait_until(lambda: mine.read_text() == "done\n", 10, "done")
    finally:
        await host.close()


async def test_a_wrapper_that_does_not_lead_its_group_makes_one(sshd, tmp_path: Path) -> None:
    """A login shell that forks the wrapper (here: a command after it) leaves it in that
    shell's group: the wrapper makes the command a group of its own with ``setsid``, which
    end-of-file on stdin kills."""
    host = ssh_host(sshd)
    await host.connect()
    try:
        assert host._conn is not None
        marker = unique_marker("fork")
        pidfile = new_pidfile(f"dep.fork-{marker}")
        proc = await host._conn.create_process(
            wrap(f"sh -c 'sleep 30' {marker}", pidfile) + "; true"
        )
        await wait_until(lambda: processes_with(f"sleep 30 {marker}"), 10, "started")
        claim = (run_dir() / pidfile.rsplit("/", 1)[1]).read_text().split()
        assert len(claim) == 2 and claim[0] != claim[1], claim
        proc.stdin.write_eof()
        await asyncio.wait_for(proc.wait_closed(), 10)
        await wait_until(lambda: not processes_with(marker), 10, "group killed")
    finally:
        await host.close()


async def test_one_wrapper_in_256_sweeps_the_finished_pid_files(sshd, tmp_path: Path) -> None:
    """Finished commands leave ``done`` pid files; the wrapper whose pid file's random part
    starts with ``00`` removes them, and the claims of kills a day old, after its command
    (the channel does not wait for it), and nothing a kill still needs: a live claim, a
    fresh cancelled name."""
    host = ssh_host(sshd)
    await host.connect()
    try:
        assert host._conn is not None
        tag = unique_marker("sweep")
        done = finished_pid_files(tag, 3)
        folder = run_dir()
        kept = {
            folder / f"{tag}.live.pid": f"{os.getpid()}\n{os.getpid()}\n",
            folder / f"{tag}.cancelled.pid": "cancelled\n",
        }
        for file, text in kept.items():
            file.write_text(text)
        stale = folder / f"{tag}.stale.pid"
        stale.write_text("cancelled\n")
        two_days_ago = time.time() - 2 * 86400
        os.utime(stale, (two_days_ago, two_days_ago))
        # a pid file the sweep blocks on (a FIFO nobody writes): the command still ends
        stuck = folder / f"{tag}.fifo.pid"
        os.mkfifo(stuck)
        pidfile = f'"{folder}/{tag}.0000beef.pid"'
        try:
            result = await asyncio.wait_for(host._conn.run(wrap("true", pidfile)), 10)
            assert result.exit_status == 0, result.stderr
        finally:
            await asyncio.to_thread(lambda: open(stuck, "w").close())  # the sweep goes on
            stuck.unlink()
        await wait_until(lambda: not [f for f in [*done, stale] if f.exists()], 10, "swept")
        assert not (folder / f"{tag}.0000beef.pid").exists()
        assert {f: f.read_text() for f in kept} == kept
        for file in kept:
            file.unlink()
    finally:
        await host.close()


async def test_a_kill_of_a_deployments_leftovers_skips_the_finished_ones(
    sshd, tmp_path: Path
) -> None:
    """``kill_tagged`` stops what still runs and leaves the finished pid files to the sweep
    (no ``rm`` per finished command); the run dir is expanded by the login shell (no
    ``id``)."""
    host = ssh_host(sshd)
    await host.connect()
    try:
        assert host._conn is not None
        tag = unique_marker("leftover")
        tmpdir, private = private_tmpdir(tmp_path)
        done = finished_pid_files(f"{tag}.deploy-a", 5, tmpdir)
        proc = await host._conn.create_process(
            private + wrap(f"sh -c 'sleep 30' {tag}", new_pidfile(f"{tag}.deploy-a"))
        )
        await wait_until(lambda: processes_with(f"sleep 30 {tag}"), 10, "started")
        path = only_on_path(tmp_path, "sh", "bash", "sleep", "find", "rm")  # no id
        out = await host._raw(f"{private}export PATH={path}; " + kill_tagged(f"{tag}."))
        assert parse_left(out) == (1, 0), out
        assert not processes_with(f"sleep 30 {tag}")
        assert all(f.read_text() == "done\n" for f in done)
        proc.close()
        for file in done:
            file.unlink()
    finally:
        await host.close()
