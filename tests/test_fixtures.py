"""The test servers are real: logins, host-key refusal, lost connections, outages."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import asyncssh
import pytest
import redis

from tests.conftest import service_missing, services_required
from tests.fixtures import RedisServer, SSHServer, free_port, port_open, wait_for_port


async def test_echo_over_verified_ssh(sshd: SSHServer) -> None:
    async with asyncssh.connect(**sshd.connect_kwargs()) as conn:
        result = await conn.run("echo hello", check=True)
    assert result.stdout == "hello\n"
    assert sshd.known_hosts.read_text().startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")


async def test_wrong_host_key_is_refused(sshd: SSHServer) -> None:
    wrong = sshd.wrong_known_hosts(sshd.root / "known_hosts.other")
    kwargs = {**sshd.connect_kwargs(), "known_hosts": str(wrong)}
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        async with asyncssh.connect(**kwargs):
            pass


async def test_password_and_unknown_key_are_refused(sshd: SSHServer) -> None:
    other_key = asyncssh.generate_private_key("ssh-ed25519")
    kwargs = {**sshd.connect_kwargs(), "client_keys": [other_key], "password": "x"}
    with pytest.raises(asyncssh.PermissionDenied):
        async with asyncssh.connect(**kwargs):
            pass


def test_config_snippet_matches_server(sshd: SSHServer) -> None:
    snippet = sshd.ssh_config_snippet()
    assert snippet == {
        "address": "127.0.0.1",
        "port": sshd.port,
        "user": sshd.user,
        "identity_files": [str(sshd.client_key)],
        "known_hosts": str(sshd.known_hosts),
    }
    assert sshd.client_pub.read_text().split()[1] in sshd.authorized_keys.read_text()


async def test_kill_sessions_drops_running_command(sshd_private: SSHServer) -> None:
    """asyncssh does not raise here: ``run()`` returns with no exit status at all.

    That (``exit_status is None`` and ``exit_signal is None``) plus a closed
    connection is how a lost connection mid-command looks to the transport.
    """
    server = sshd_private
    async with asyncssh.connect(**server.connect_kwargs()) as conn:
        command = asyncio.create_task(conn.run("sleep 5; echo done"))
        deadline = time.monotonic() + 5
        while len(server.session_pids()) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # let the channel open and `sleep` start
        started = time.monotonic()
        assert await asyncio.to_thread(server.kill_sessions) > 0
        result = await asyncio.wait_for(command, timeout=4)
        assert time.monotonic() - started < 3, "the command must end now, not after sleep 5"
        assert result.exit_status is None and result.exit_signal is None
        assert result.stdout == ""
        assert conn.is_closed()
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.run("true")
    assert server.running, "the listener must survive kill_sessions()"
    assert server.session_pids() == []
    async with asyncssh.connect(**server.connect_kwargs()) as conn:
        assert (await conn.run("echo again", check=True)).stdout == "again\n"


async def test_sshd_stop_refuses_then_start_works(sshd_private: SSHServer) -> None:
    server = sshd_private
    port = server.port
    await asyncio.to_thread(server.stop)
    assert not port_open(server.host, port)
    with pytest.raises(OSError):
        async with asyncssh.connect(**server.connect_kwargs(), connect_timeout=3):
            pass
    await asyncio.to_thread(server.start)
    assert server.port == port
    async with asyncssh.connect(**server.connect_kwargs()) as conn:
        assert (await conn.run("echo back", check=True)).stdout == "back\n"


def test_redis_ping_set_get(fresh_redis: RedisServer) -> None:
    assert fresh_redis.url == f"redis://127.0.0.1:{fresh_redis.port}/0"
    client = redis.Redis.from_url(fresh_redis.url, decode_responses=True)
    with client:
        assert client.ping() is True
        assert client.dbsize() == 0
        client.set("portal-ops:test", "value")
        assert client.get("portal-ops:test") == "value"
    fresh_redis.flush()
    with fresh_redis.client() as again:
        assert again.get("portal-ops:test") is None


def test_redis_stop_refuses_then_start_works(redis_server_private: RedisServer) -> None:
    server = redis_server_private
    port = server.port
    with server.client() as client:
        client.set("k", "v")
    server.stop()
    with server.client() as client, pytest.raises(redis.ConnectionError):
        client.ping()
    server.start()
    assert server.port == port
    with server.client() as client:
        assert client.ping() is True
        assert client.get("k") is None, "no persistence: a restart starts empty"


def test_port_helpers() -> None:
    port = free_port()
    assert 0 < port < 65536
    assert not port_open("127.0.0.1", port)
    with pytest.raises(TimeoutError):
        wait_for_port("127.0.0.1", port, timeout=0.1)


def test_services_required_reads_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTAL_OPS_REQUIRE_SERVICES", raising=False)
    monkeypatch.setenv("CI", "true")
    assert services_required()
    monkeypatch.setenv("CI", "false")
    assert not services_required()
    monkeypatch.setenv("PORTAL_OPS_REQUIRE_SERVICES", "1")
    assert services_required()


def test_missing_service_skips_locally_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTAL_OPS_REQUIRE_SERVICES", raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="sshd not found"):
        service_missing("sshd not found")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required here"):
        service_missing("sshd not found")


def test_operator_is_set() -> None:
    assert os.environ.get("PORTAL_OPS_OPERATOR")


def test_state_dir_is_isolated(state_dir: Path) -> None:
    assert os.environ["PORTAL_OPS_STATE_DIR"] == str(state_dir)
    assert state_dir.is_dir() and not any(state_dir.iterdir())


def test_ssh_sessions_run_with_the_fixture_home_not_the_users_rc_files(sshd) -> None:
    """A developer's ~/.bashrc (pyenv init) cost ~0.1 s per SSH command; sessions skip it."""
    import asyncio

    import asyncssh

    async def home() -> str:
        async with asyncssh.connect(**sshd.connect_kwargs()) as conn:
            return (await conn.run('printf %s "$HOME"', check=True)).stdout

    assert asyncio.run(home()) == str(sshd.home)
