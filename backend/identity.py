"""Who is operating: recorded on every deployment, lock, flag change and rollback."""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Operator:
    user: str
    host: str
    via: str = ""  # where the operator came from: "ssh from 10.0.0.5", "sudo from alice"

    def __str__(self) -> str:
        return f"{self.user}@{self.host}" + (f" ({self.via})" if self.via else "")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def current_operator() -> Operator:
    """The operator from the environment: ``PORTAL_OPS_OPERATOR`` wins, then the login user.

    ``SUDO_USER`` names the human behind a sudo; ``SSH_CONNECTION`` names the address an SSH
    session came from, so a shared deploy account still says who was at the keyboard.
    """
    user = os.environ.get("PORTAL_OPS_OPERATOR") or _login_user()
    via: list[str] = []
    if os.environ.get("SUDO_USER") and os.environ["SUDO_USER"] != user:
        via.append(f"sudo from {os.environ['SUDO_USER']}")
    ssh = os.environ.get("SSH_CONNECTION", "").split()
    if ssh:
        via.append(f"ssh from {ssh[0]}")
    return Operator(user=user, host=socket.gethostname(), via=", ".join(via))


def _login_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): fall back to the uid
        return f"uid{os.getuid()}"
