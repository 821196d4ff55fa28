"""A host's commands share one remote shell (backend/transport/session.py), against a real
sshd: and still die with it, are found by a kill from another connection, and are sent
again after a lost link only when the host shows they never started."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from backend.transport import CommandTimeout, ConnectionLost
from backend.transport.remote_group import CANCELLED_EXIT, kill_pidfile, kill_tagged, new_pidfile
from backend.transport.session import MARK

from .faults import processes_with, ssh_host, unique_marker, wait_until

ROOT = Path(__file__).resolve().parents[2]


async def test_commands_on_a_host_share_one_shell_and_a_busy_one_takes_a_channel(
    sshd, tmp_path: Path
) -> None:
    host = ssh_host(sshd)
    try:
        # $$ in a subshell is the shell's own pid: the same shell ran all three
        shells = {(await host.run("echo $$")).stdout for _ in range(3)}
        assert len(shells) == 1, shells
        first = (await host.run("printf 'a\\n\\nlast'; echo oops >&2; exit 3")).__dict__
        assert (first["stdout"], first["stderr"], first["exit_status"]) == ("a\n\nlast", "oops", 3)
        # the session's own names do not reach the command
        leak = await host.run("type _po_run alive stop sweep 2>&1; echo d=$d f=$f r=$r")
        assert "function" not in leak.stdout and "d= f= r=" in leak.stdout, leak.stdout
        # while one command holds the session, the others take channels: all run at once
        marker = unique_marker("busy")
        both = await asyncio.gather(
            host.run(f"sh -c 'sleep 0.5' {marker}; echo $$"), host.run("echo $$")
        )
        assert both[0].stdout in shells and both[1].stdout not in shells
    finally:
        await host.close()


async def test_a_kill_from_another_connection_stops_a_session_command(sshd, tmp_path: Path) -> None:
    """A deployment's leftovers killed from elsewhere (a rollback's kill_tagged): the
    session's command dies, run() reports it killed, and the next command gets a new
    session."""
    host = ssh_host(sshd)
    other = ssh_host(sshd)
    try:
        before = (await host.run("echo $$")).stdout
        marker = unique_marker("killed")
        from backend.transport.base import command_tag

        token = command_tag.set(f"dep-{marker}.deploy-x")
        try:
            running = asyncio.create_task(host.run(f"sh -c 'sleep 30' {marker}"))
        finally:
            command_tag.reset(token)
        await wait_until(lambda: processes_with(f"sleep 30 {marker}"), 10, "started")
        left = await other._raw(kill_tagged(f"dep-{marker}."))
        assert "LEFT=1 ALIVE=0" in left, left
        result = await asyncio.wait_for(running, 10)
        assert result.exit_status == 137
        assert not processes_with(f"sleep 30 {marker}")
        after = await host.run("echo $$")
        assert after.ok and after.stdout != before
    finally:
        await host.close()
        await other.close()


async def test_a_timeout_ends_the_session_and_the_command(sshd, tmp_path: Path) -> None:
    host = ssh_host(sshd)
    try:
        await host.run("true")
        marker = unique_marker("slow")
        with pytest.raises(CommandTimeout, match="killed on the host"):
            await host.run(f"sh -c 'sleep 30' {marker}", timeout=0.5)
        assert not processes_with(f"sleep 30 {marker}")
        assert (await host.run("echo next")).stdout == "next"
    finally:
        await host.close()


async def test_a_name_claimed_by_a_kill_is_never_started_in_the_session(
    sshd, tmp_path: Path
) -> None:
    host = ssh_host(sshd)
    try:
        await host.run("true")
        session = host._session
        assert session is not None
        pidfile = new_pidfile("dep.claimed")
        started = tmp_path / "started"
        await host._raw(kill_pidfile(pidfile))
        lines: list[tuple[str, str]] = []
        status = await session.run(
            pidfile.rsplit("/", 1)[1],
            f"touch {started}",
            lambda stream, line: lines.append((stream, line)),
        )
        assert status == CANCELLED_EXIT
        assert ("stderr", "portal-ops: cancelled before it started") in lines
        assert not started.exists()
        assert (await host.run("echo still")).stdout == "still"  # the session goes on
    finally:
        await host.close()


CLIENT = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, {root!r})
    from backend.transport.ssh import SSHHost, SSHOptions
    async def main():
        host = SSHHost("h", {host!r}, {port}, {user!r}, options=SSHOptions(
            known_hosts={known!r}, identity_files=[{key!r}], use_agent=False))
        await host.run("true")
        print("ready", flush=True)
        await host.run("sh -c 'sleep 30' {marker}")
    asyncio.run(main())
    """
)


async def test_portal_ops_killed_during_a_session_command_kills_it(sshd, tmp_path: Path) -> None:
    """SIGKILL of the client: the session's shell reads the end of its stdin and stops the
    command it was running; its pid file says done."""
    marker = unique_marker("sigkill")
    script = CLIENT.format(
        root=str(ROOT),
        host=sshd.host,
        port=sshd.port,
        user=sshd.user,
        known=str(sshd.known_hosts),
        key=str(sshd.client_key),
        marker=marker,
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        await wait_until(lambda: processes_with(f"sleep 30 {marker}"), 10, "started")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        await wait_until(lambda: not processes_with(f"sleep 30 {marker}"), 10, "stopped")
    finally:
        if proc.poll() is None:
            proc.kill()


async def test_a_frame_sent_to_a_link_already_gone_is_sent_again_once(sshd, tmp_path: Path) -> None:
    """The link dies between two commands, unnoticed: the next command's frame goes to a
    dead session. The host shows (its pid file's name claimed by us) that it never started:
    it is sent again, once, even though it is not marked safe to repeat."""
    host = ssh_host(sshd, max_reconnects=2)
    try:
        await host.run("true")
        counter = tmp_path / "runs"
        sshd.kill_sessions()
        result = await host.run(f"echo x >> {counter}; echo done")
        assert result.stdout == "done"
        assert counter.read_text() == "x\n"
    finally:
        await host.close()


async def test_a_command_cut_off_by_a_lost_link_is_not_sent_again(sshd, tmp_path: Path) -> None:
    """It had started (the host says so): not safe to repeat, so the loss is reported, and
    the command is dead (the session's shell stopped it at the link's end)."""
    host = ssh_host(sshd, max_reconnects=2)
    marker = unique_marker("cut")
    counter = tmp_path / "runs"
    try:
        await host.run("true")
        running = asyncio.create_task(host.run(f"echo x >> {counter}; sh -c 'sleep 30' {marker}"))
        await wait_until(lambda: processes_with(f"sleep 30 {marker}"), 10, "started")
        sshd.kill_sessions()
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(running, 20)
        await wait_until(lambda: not processes_with(f"sleep 30 {marker}"), 10, "stopped")
        assert counter.read_text() == "x\n"
    finally:
        await host.close()


async def test_a_marker_printed_by_a_command_is_plain_output(sshd, tmp_path: Path) -> None:
    """Each session and each command has a nonce of its own: a command printing the
    marker's shape (even with its session's nonce) does not end itself."""
    host = ssh_host(sshd)
    try:
        await host.run("true")
        session = host._session
        assert session is not None
        fake = f"{MARK}:{session.nonce}:0000:0"
        result = await host.run(f"echo {fake}; echo {MARK}:other:1:0; sleep 0.2; exit 5")
        assert result.exit_status == 5
        assert result.stdout.splitlines() == [fake, f"{MARK}:other:1:0"]
    finally:
        await host.close()


async def test_a_login_shell_that_prints_runs_each_command_once(tmp_path: Path) -> None:
    """An rc file that prints (bash sources ~/.bashrc for sshd's commands) says its line
    before the session's boot: not taken for a failed start (which would send the command
    again over a channel while the session ran it), nor for the command's output."""
    from tests.fixtures.sshd import SSHServer

    with SSHServer(tmp_path / "sshd").start() as server:
        (server.home / ".bashrc").write_text("echo banner\n")
        host = ssh_host(server)
        counter = tmp_path / "runs"
        try:
            first = await host.run(f"echo x >> {counter}; echo out")
            second = await host.run(f"echo x >> {counter}; echo $$")
            third = await host.run("echo $$")
            assert first.stdout == "out"
            assert second.stdout == third.stdout  # one session, no banner
            assert counter.read_text() == "x\nx\n"
        finally:
            await host.close()


async def test_output_of_many_chunks_stays_whole_and_its_own(sshd, tmp_path: Path) -> None:
    """Lines are cut across chunks (CRLF, a character of several bytes at a chunk's edge, a
    last line without its newline); the next command's output starts clean."""
    source = tmp_path / "out.txt"
    body = "".join(f"line {i} é€\r\n" for i in range(50_000)) + "\r\nlast"
    source.write_text(body, encoding="utf-8", newline="")
    host = ssh_host(sshd)
    try:
        seen: list[str] = []
        result = await host.run(f"cat {source}", on_line=lambda s, line: seen.append(line))
        expected = [f"line {i} é€" for i in range(50_000)] + ["", "last"]
        assert seen == expected
        assert result.stdout == "\n".join(expected)
        assert (await host.run("echo next")).stdout == "next"
    finally:
        await host.close()
