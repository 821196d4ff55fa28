"""The cipher offered first: AES-GCM, unless the user's ssh_config chooses.

asyncssh's chacha20-poly1305 makes four cipher contexts per packet in Python; AES-GCM
keeps one per key, so a deployment's packets cost less CPU here. Both are secure and in
OpenSSH's defaults; asyncssh's other defaults follow. A ``Ciphers`` line in ssh_config (or
in a file it includes) is taken as written; host keys are verified either way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.transport.base import HostKeyMismatch
from tests.engine.faults import ssh_host
from tests.fixtures.sshd import SSHServer


async def negotiated(sshd: SSHServer, ssh_config: Path, known_hosts: Path | None = None) -> str:
    """The cipher a login to ``sshd`` settled on, with ``ssh_config`` as the user's."""
    host = ssh_host(
        sshd, known_hosts=str(known_hosts or sshd.known_hosts), config_file=str(ssh_config)
    )
    try:
        await host.connect()
        assert host._conn is not None
        return str(host._conn.get_extra_info("send_cipher"))
    finally:
        await host.close()


async def test_aes_gcm_first_when_ssh_config_names_no_ciphers(
    sshd: SSHServer, tmp_path: Path
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("Host *\n  ServerAliveInterval 10\n# Ciphers aes256-ctr\n")
    assert await negotiated(sshd, config) == "aes128-gcm@openssh.com"


async def test_ciphers_in_an_included_file_are_taken_as_written(
    sshd: SSHServer, tmp_path: Path
) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "ciphers.conf").write_text("Ciphers=aes256-ctr\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"Include {tmp_path}/conf.d/*.conf\n")
    assert await negotiated(sshd, config) == "aes256-ctr"


async def test_reading_ssh_config_for_ciphers_runs_no_match_exec(
    sshd: SSHServer, tmp_path: Path
) -> None:
    """A ``Match exec`` command runs once per login, as asyncssh runs it: looking for
    ``Ciphers`` reads the files, it evaluates nothing."""
    ran = tmp_path / "ran"
    config = tmp_path / "ssh_config"
    config.write_text(f'Match exec "echo x >> {ran}"\n  ServerAliveInterval 10\n')
    await negotiated(sshd, config)
    assert ran.read_text() == "x\n"


@pytest.mark.parametrize(
    "lines",
    [
        "Ciphers chacha20-poly1305@openssh.com\n",
        "Host {host}\n  Ciphers aes256-ctr,chacha20-poly1305@openssh.com\n",
    ],
)
async def test_ssh_config_ciphers_are_taken_as_written(
    sshd: SSHServer, tmp_path: Path, lines: str
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(lines.format(host=sshd.host))
    first = lines.split("Ciphers ")[1].split(",")[0].strip()
    assert await negotiated(sshd, config) == first


async def test_host_key_still_verified(sshd: SSHServer, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("")
    wrong = tmp_path / "known_hosts"
    # another server's key under this server's name
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    wrong.write_text(f"[{sshd.host}]:{sshd.port} {other}\n")
    with pytest.raises(HostKeyMismatch):
        await negotiated(sshd, config, known_hosts=wrong)
