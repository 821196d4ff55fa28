"""The cipher offered first: AES-GCM, unless the user's ssh_config chooses.

asyncssh's chacha20-poly1305 makes four cipher contexts per packet in Python; AES-GCM
keeps one per key, so a deployment's packets cost less CPU here. Both are secure and in
OpenSSH's defaults; asyncssh's other defaults follow. A ``Ciphers`` line in ssh_config
that applies to the host is taken as written, as ssh(1) would; host keys are verified
either way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.transport.base import HostKeyMismatch
from backend.transport.ssh import SSHHost, SSHOptions
from tests.fixtures.sshd import SSHServer


async def negotiated(sshd: SSHServer, ssh_config: Path, known_hosts: Path | None = None) -> str:
    """The cipher a login to ``sshd`` settled on, with ``ssh_config`` as the user's."""
    host = SSHHost(
        "h",
        sshd.host,
        sshd.port,
        sshd.user,
        options=SSHOptions(
            known_hosts=str(known_hosts or sshd.known_hosts),
            identity_files=[str(sshd.client_key)],
            use_agent=False,
            config_file=str(ssh_config),
        ),
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
    config.write_text("Host elsewhere\n  Ciphers aes256-ctr\n")  # not this host's
    assert await negotiated(sshd, config) == "aes128-gcm@openssh.com"


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
