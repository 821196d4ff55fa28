"""Settings shared by app.py and manage.py: the release they run from and its ``.env``.

The release directory is where this file lives (resolved), so a server started with
``cwd = current`` knows exactly which release it runs; the ``.env`` is the deploy's shared
file, symlinked into every release by the engine.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

RELEASE_DIR = Path(__file__).resolve().parent


class SettingsError(Exception):
    """The release cannot run: a missing .env or a bad value in it."""


def read_env(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and ``#`` comments skipped, one pair of quotes removed."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


@dataclass(frozen=True)
class Settings:
    release_dir: Path
    port: int
    database: Path
    host_name: str
    storage: Path
    break_env: str
    redis_url: str  # feature flags (portal-ops' FlagClient); empty: no flags evaluated
    redis_prefix: str = "portal-ops"
    python_path: str = ""  # where `backend` (portal-ops) is importable from

    @property
    def version(self) -> str:
        return _read(self.release_dir / "VERSION") or "0"

    @property
    def revision(self) -> str:
        return _read(self.release_dir / "REVISION")

    @property
    def release(self) -> str:
        return self.release_dir.name

    @property
    def break_scenario(self) -> str | None:
        """Only a release other than version 1 can be broken: v1 is the known-good one."""
        if self.version == "1":
            return None
        return _read(self.release_dir / "BREAK") or self.break_env.strip() or None

    @property
    def logs_dir(self) -> Path:
        return self.storage / "logs"

    @property
    def run_dir(self) -> Path:
        return self.storage / "run"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "app.pid"

    @property
    def access_log(self) -> Path:
        return self.logs_dir / "access.log"

    @property
    def app_log(self) -> Path:
        return self.logs_dir / "app.log"

    @property
    def server_log(self) -> Path:
        return self.logs_dir / "server.log"

    @property
    def maintenance_file(self) -> Path:
        return self.storage / "maintenance"

    def ensure_dirs(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def load(release_dir: Path = RELEASE_DIR) -> Settings:
    """The settings of ``release_dir`` from its ``.env``; every problem named at once."""
    env_file = release_dir / ".env"
    if not env_file.exists():
        raise SettingsError(
            f"no .env in {release_dir} (the deploy links it from shared/.env):"
            " it must set PORT, DATABASE and STORAGE"
        )
    env = read_env(env_file)
    problems = [f"{key} is not set" for key in ("PORT", "DATABASE", "STORAGE") if not env.get(key)]
    port = 0
    if env.get("PORT"):
        try:
            port = int(env["PORT"])
            if not 1 <= port <= 65535:
                raise ValueError
        except ValueError:
            problems.append(f"PORT must be a port number 1-65535, got {env['PORT']!r}")
    if problems:
        raise SettingsError(f"{env_file}: " + "; ".join(problems))
    return Settings(
        release_dir=release_dir,
        port=port,
        database=Path(env["DATABASE"]).expanduser(),
        host_name=env.get("HOST_NAME") or socket.gethostname(),
        storage=Path(env["STORAGE"]).expanduser(),
        break_env=env.get("BREAK", ""),
        redis_url=env.get("REDIS_URL", ""),
        redis_prefix=env.get("REDIS_PREFIX") or "portal-ops",
        python_path=env.get("PORTAL_OPS_PYTHONPATH", ""),
    )


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        os.waitpid(pid, os.WNOHANG)  # reaps it if it is our own child
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
