"""SSH the way OpenSSH users expect, against real sshd servers on loopback.

ssh_config's User/Port apply when the portal-ops config leaves them out; a jump host
needs no user; all hosts behind one bastion share one login to it; simultaneous logins
are bounded by ``[ssh] max_connections``; a channel the server refuses (MaxSessions) is
retried on the same connection without killing the commands already running on it.
"""

from __future__ import annotations

import asyncio
import getpass
import time
from pathlib import Path
from typing import Any

import pytest

from backend.config import ConfigError, parse_config
from backend.transport import Host, connect_all, make_host
from backend.transport.ssh import parse_jump
from tests.fixtures.sshd import SSHServer


def _config(tmp_path: Path, hosts: list[dict[str, Any]], **ssh: Any):
    raw = {
        "portal": {"repository": str(tmp_path / "repo"), "deploy_path": str(tmp_path / "app")},
        "hosts": hosts,
        "ssh": {"use_agent": False, "connect_timeout": 10, **ssh},
    }
    return parse_config(raw)


def _hosts(config) -> list[Host]:
    return [make_host(config, h) for h in config.hosts]


async def _close(hosts: list[Host]) -> None:
    await asyncio.gather(*(h.close() for h in hosts))


@pytest.fixture
def servers(tmp_path: Path):
    """Start SSHServers made by the test; stop them all afterwards."""
    started: list[SSHServer] = []

    def start(name: str, **kwargs: Any) -> SSHServer:
        server = SSHServer(root=tmp_path / name, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _both(tmp_path: Path, *servers: SSHServer) -> dict[str, Any]:
    """known_hosts and identity files that reach every one of ``servers``."""
    known = tmp_path / "known_hosts.all"
    known.write_text("".join(s.known_hosts.read_text() for s in servers))
    return {"known_hosts": str(known), "identity_files": [str(s.client_key) for s in servers]}


# -- ssh_config ---------------------------------------------------------------------


async def test_host_without_user_and_port_takes_them_from_ssh_config(
    sshd: SSHServer, tmp_path: Path
) -> None:
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        f"Host portal-web\n  HostName {sshd.host}\n  Port {sshd.port}\n  User {sshd.user}\n"
    )
    config = _config(
        tmp_path,
        [{"name": "web-1", "address": "portal-web"}],
        config_file=str(ssh_config),
        known_hosts=str(sshd.known_hosts),
        identity_files=[str(sshd.client_key)],
    )
    assert config.hosts[0].port is None and config.hosts[0].user is None
    [host] = _hosts(config)
    try:
        result = await host.run("id -un")
        assert result.exit_status == 0
        assert result.stdout.strip() == sshd.user
    finally:
        await host.close()


async def test_ssh_config_user_is_the_one_that_logs_in(sshd: SSHServer, tmp_path: Path) -> None:
    """Proof that User comes from ssh_config: a user sshd does not know is refused by name."""
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(f"Host {sshd.host}\n  Port {sshd.port}\n  User no-such-deployer\n")
    config = _config(
        tmp_path,
        [{"name": "web-1", "address": sshd.host}],
        config_file=str(ssh_config),
        known_hosts=str(sshd.known_hosts),
        identity_files=[str(sshd.client_key)],
    )
    [host] = _hosts(config)
    with pytest.raises(Exception, match="no-such-deployer"):
        await host.connect()
    await host.close()


async def test_configured_user_and_port_win_over_ssh_config(
    sshd: SSHServer, tmp_path: Path
) -> None:
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(f"Host {sshd.host}\n  Port 1\n  User no-such-deployer\n")
    config = _config(
        tmp_path,
        [{"name": "web-1", "address": sshd.host, "port": sshd.port, "user": sshd.user}],
        config_file=str(ssh_config),
        known_hosts=str(sshd.known_hosts),
        identity_files=[str(sshd.client_key)],
    )
    [host] = _hosts(config)
    try:
        assert (await host.run("true")).exit_status == 0
    finally:
        await host.close()


def test_jump_spec_without_user_or_port_leaves_them_to_ssh_config() -> None:
    assert parse_jump("bastion.example.com") == (None, "bastion.example.com", None)
    assert parse_jump("ops@bastion:2222") == ("ops", "bastion", 2222)
    assert parse_jump("[::1]:2200") == (None, "::1", 2200)


def test_bad_jump_spec_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="jump"):
        _config(tmp_path, [{"name": "web-1", "address": "10.0.0.1", "jump": "bastion:http"}])


# -- the bastion --------------------------------------------------------------------


async def test_jump_without_user(servers, tmp_path: Path) -> None:
    bastion = servers("bastion")
    target = servers("target")
    config = _config(
        tmp_path,
        [
            {
                "name": "web-1",
                "address": target.host,
                "port": target.port,
                "jump": f"{bastion.host}:{bastion.port}",
            }
        ],
        **_both(tmp_path, bastion, target),
    )
    [host] = _hosts(config)
    try:
        result = await host.run("echo through")
        assert result.stdout.strip() == "through"
    finally:
        await host.close()


async def test_fifty_hosts_behind_one_bastion_log_in_to_it_once(servers, tmp_path: Path) -> None:
    bastion = servers("bastion", log_level="INFO")
    target = servers("target", log_level="INFO")
    bastion_before, target_before = bastion.logins(), target.logins()
    jump = f"{bastion.user}@{bastion.host}:{bastion.port}"
    config = _config(
        tmp_path,
        [
            {"name": f"web-{i}", "address": target.host, "port": target.port, "jump": jump}
            for i in range(50)
        ],
        **_both(tmp_path, bastion, target),
        connect_timeout=30,
    )
    hosts = _hosts(config)
    try:
        assert await connect_all(hosts) == {}
        results = await asyncio.gather(*(h.run("echo ok") for h in hosts))
        assert all(r.stdout.strip() == "ok" for r in results)
        assert bastion.logins() - bastion_before == 1
        assert target.logins() - target_before == 50
    finally:
        await _close(hosts)
    # the shared bastion connection is closed with the last host behind it
    deadline = time.monotonic() + 10
    while len(bastion.session_pids()) > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert bastion.session_pids() == []


async def test_bastion_lost_is_reopened_for_the_hosts_behind_it(servers, tmp_path: Path) -> None:
    bastion = servers("bastion", log_level="INFO")
    target = servers("target")
    jump = f"{bastion.host}:{bastion.port}"
    config = _config(
        tmp_path,
        [
            {"name": f"web-{i}", "address": target.host, "port": target.port, "jump": jump}
            for i in range(3)
        ],
        **_both(tmp_path, bastion, target),
    )
    hosts = _hosts(config)
    before = bastion.logins()
    try:
        assert await connect_all(hosts) == {}
        assert bastion.kill_sessions() > 0, bastion.session_pids()
        results = await asyncio.gather(*(h.run("echo again", retry_safe=True) for h in hosts))
        assert [r.stdout.strip() for r in results] == ["again"] * 3
        assert bastion.logins() - before == 2  # the first login and one reopened for all three
    finally:
        await _close(hosts)


# -- bounds -------------------------------------------------------------------------


async def test_simultaneous_logins_are_bounded_by_max_connections(servers, tmp_path: Path) -> None:
    # sshd drops a new connection while 5 others are still logging in (MaxStartups 5);
    # a slow key lookup keeps each login open long enough that 24 at once would overlap.
    # The server counts a login finished a moment after the client does: hence 2 < 5.
    keys = tmp_path / "target" / "authorized_keys"
    target = servers(
        "target",
        extra_config=[
            "MaxStartups 5",
            f'AuthorizedKeysCommand /bin/sh -c "sleep 0.2; cat {keys}"',
            f"AuthorizedKeysCommandUser {getpass.getuser()}",
        ],
    )

    def fleet(limit: int):
        return _config(
            tmp_path,
            [{"name": f"web-{i}", "address": target.host, "port": target.port} for i in range(24)],
            known_hosts=str(target.known_hosts),
            identity_files=[str(target.client_key)],
            max_connections=limit,
            connect_timeout=30,
        )

    unbounded = _hosts(fleet(24))
    try:
        assert await connect_all(unbounded) != {}, "sshd refused nothing: the test proves nothing"
    finally:
        await _close(unbounded)
    bounded = _hosts(fleet(2))
    try:
        assert await connect_all(bounded) == {}
    finally:
        await _close(bounded)


def test_max_connections_default_and_bad_value(tmp_path: Path) -> None:
    config = _config(tmp_path, [{"name": "web-1", "address": "10.0.0.1"}])
    assert config.ssh.max_connections == 5
    with pytest.raises(ConfigError, match="max_connections"):
        _config(tmp_path, [{"name": "web-1", "address": "10.0.0.1"}], max_connections=0)


async def test_refused_channel_waits_without_killing_its_neighbours(
    servers, tmp_path: Path
) -> None:
    target = servers("target", extra_config=["MaxSessions 2"])
    config = _config(
        tmp_path,
        [{"name": "web-1", "address": target.host, "port": target.port, "user": target.user}],
        known_hosts=str(target.known_hosts),
        identity_files=[str(target.client_key)],
    )
    [host] = _hosts(config)
    work = tmp_path / "work"
    work.mkdir()
    go = work / "go"

    def holder(name: str) -> str:
        return f"touch {work}/{name}; while [ ! -e {go} ]; do sleep 0.05; done; echo {name}"

    refused = asyncio.Event()

    def on_line(stream: str, line: str) -> None:
        if "channel refused" in line:
            refused.set()

    try:
        await host.connect()
        neighbours = [asyncio.create_task(host.run(holder(n))) for n in ("a", "b")]
        deadline = time.monotonic() + 20
        while not ((work / "a").exists() and (work / "b").exists()):
            assert time.monotonic() < deadline, "the two neighbours never started"
            await asyncio.sleep(0.02)
        third = asyncio.create_task(host.run("echo c", on_line=on_line))
        await asyncio.wait_for(refused.wait(), 20)  # sshd said no to a third session
        go.touch()
        results = await asyncio.wait_for(asyncio.gather(*neighbours, third), 30)
        assert [r.stdout.strip() for r in results] == ["a", "b", "c"]
        assert [r.exit_status for r in results] == [0, 0, 0]
    finally:
        go.touch()
        await host.close()


async def test_reuse_session_off_gives_each_command_a_channel(sshd, tmp_path: Path) -> None:
    """``[ssh] reuse_session``: on by default (one shell carries a host's commands: the
    same ``$$``); off, a channel each, as a site whose sshd log names each command wants."""
    host = {
        "name": "web-1",
        "address": sshd.host,
        "port": sshd.port,
        "user": sshd.user,
    }
    keys = {"known_hosts": str(sshd.known_hosts), "identity_files": [str(sshd.client_key)]}
    for reuse, shells in ((True, 1), (False, 3)):
        config = _config(tmp_path, [host], reuse_session=reuse, **keys)
        hosts = _hosts(config)
        try:
            seen = {(await hosts[0].run("echo $$")).stdout for _ in range(3)}
        finally:
            await _close(hosts)
        assert len(seen) == shells, (reuse, seen)
    with pytest.raises(ConfigError, match="reuse_session"):
        _config(tmp_path, [host], reuse_session="sometimes")
