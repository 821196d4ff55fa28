"""The demo sandbox: a portal with two versions, N local "hosts", a load balancer, a config.

``Sandbox(root).create()`` builds, with no root, no config and no running service::

    root/repo/                      git repository: tag v1 (version 1), tag v2 (version 2)
    root/db/portal.sqlite3          the database every host shares (empty until migrated)
    root/hosts/host-N/shared/.env   PORT, DATABASE, HOST_NAME, STORAGE, BREAK, REDIS_URL,
                                    REDIS_PREFIX, PORTAL_OPS_PYTHONPATH
    root/hosts/host-N/shared/storage/{logs,run}
    root/portal-ops.toml            a config for the real engine (transport = "local")
    root/sandbox.json               ports, paths, pids: what another process needs to stop it
    root/state/                     portal-ops' state directory for the demo
    root/redis/                     the sandbox's own redis-server's directory (no data kept)

Nothing is deployed by the sandbox itself: the engine deploys v1, then v2, through the
config. ``start_redis()`` starts the sandbox's own redis-server (when one is installed),
``start_load_balancer()`` puts the front up; ``stop()`` (from any process, via
``Sandbox.load(root)``) stops the front, every app server and the Redis.

Version 2 introduces the feature flag ``ui-improvements`` (``[flags] release_flags``):
phase 3 creates it off, phase 8 rolls it out 10 -> 50 -> 100 %, each step held about a
second and gated on every host's health. With Redis (``redis-server`` on PATH, or
``$PORTAL_OPS_DEMO_REDIS`` naming one; ``off`` disables it), flags are published there and
the sample portal evaluates the flag per company with ``backend.flags.FlagClient``; without
it, flags live in the store only and the portal says it evaluates none.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..paths import state_dir
from .processes import _read_pid, _redis_ping, free_ports, pid_alive, port_open
from .tomlfile import dump_toml

__all__ = [
    "RELEASE_FLAG",
    "SCENARIOS",
    "Sandbox",
    "SandboxError",
    "SandboxHost",
    "default_root",
    "dump_toml",  # backend/demo/tomlfile.py: the one TOML writer
    "find_redis_server",
    "free_ports",
    "pid_alive",
    "port_open",
]

APP_SOURCE = Path(__file__).resolve().parent / "portal_app"
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # where `backend` is importable from
APP_FILES = ("app.py", "manage.py", "settings.py")
MIGRATIONS = {
    "1": ["migrations/001_create_companies.sql"],
    "2": ["migrations/001_create_companies.sql", "migrations/002_create_company_features.sql"],
}
FAILING_MIGRATION = "broken/003_add_invoice_totals.sql"
# Scenarios the app itself plays (baked into the v2 commit as a BREAK file); "host" is
# accepted for the engine's sake (an SSH connection dying) and changes nothing in the app.
APP_SCENARIOS = ("health", "errors", "migration")
SCENARIOS = (*APP_SCENARIOS, "host")
ACCENTS = {"1": "#2f5bd3", "2": "#0f8a6a"}
GIT_IDENTITY = ("-c", "user.name=portal-ops", "-c", "user.email=demo@localhost")
STOP_TIMEOUT = 10.0
RELEASE_FLAG = "ui-improvements"  # the flag version 2 introduces (the portal evaluates it)
REDIS_ENV = "PORTAL_OPS_DEMO_REDIS"  # a redis-server path, or off/0/no/false: no Redis


def find_redis_server() -> str | None:
    """The redis-server the sandbox starts: ``$PORTAL_OPS_DEMO_REDIS`` (a path; ``off``
    disables Redis), else ``redis-server`` on PATH; None when there is none."""
    chosen = os.environ.get(REDIS_ENV, "").strip()
    if chosen.lower() in ("off", "0", "no", "false", "none"):
        return None
    if chosen:
        return shutil.which(chosen)  # a name on PATH or an executable path
    return shutil.which("redis-server")


class SandboxError(Exception):
    """The sandbox cannot be built or started; the message says what to do."""


@dataclass(frozen=True)
class SandboxHost:
    """One local "host": its own deploy path, shared files and app port."""

    name: str
    port: int
    deploy_path: str

    @property
    def shared(self) -> Path:
        return Path(self.deploy_path) / "shared"

    @property
    def env_file(self) -> Path:
        return self.shared / ".env"

    @property
    def storage(self) -> Path:
        return self.shared / "storage"

    @property
    def pidfile(self) -> Path:
        return self.storage / "run" / "app.pid"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def health_url(self) -> str:
        return f"{self.url}/up"

    @property
    def current(self) -> Path:
        return Path(self.deploy_path) / "current"


def default_root() -> Path:
    """``$PORTAL_OPS_DEMO_DIR``, else ``<state dir>/demo``."""
    if os.environ.get("PORTAL_OPS_DEMO_DIR"):
        return Path(os.environ["PORTAL_OPS_DEMO_DIR"]).expanduser()
    return state_dir() / "demo"


class Sandbox:
    """Build, start, stop and remove the demo sandbox under ``root``."""

    def __init__(
        self,
        root: Path | str,
        hosts: int = 3,
        scenario: str | None = None,
        redis: bool | None = None,
    ) -> None:
        """``redis``: True needs a redis-server, False runs without, None (the default)
        uses one when :func:`find_redis_server` finds it."""
        if hosts < 1:
            raise ValueError("a sandbox needs at least one host")
        if scenario is not None and scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}: one of {', '.join(SCENARIOS)}")
        self.root = Path(root).expanduser().resolve()
        self.host_count = hosts
        self.scenario = scenario
        self.lb_port = 0
        self.lb_pid: int | None = None
        self.hosts: list[SandboxHost] = []
        self._lb_proc: subprocess.Popen[bytes] | None = None
        self.redis_wanted = redis
        self.redis_binary: str | None = None
        self.redis_port = 0  # 0: this sandbox runs without Redis
        self.redis_pid: int | None = None
        self._redis_proc: subprocess.Popen[bytes] | None = None

    default_root = staticmethod(default_root)

    # -- paths -----------------------------------------------------------------------------------

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def database(self) -> Path:
        return self.root / "db" / "portal.sqlite3"

    @property
    def config_path(self) -> Path:
        return self.root / "portal-ops.toml"

    @property
    def info_path(self) -> Path:
        return self.root / "sandbox.json"

    @property
    def notify_url(self) -> str:
        """The webhook receiver in the sandbox's front: it lives as long as the sandbox."""
        return f"{self.url}/_lb/notify"

    @property
    def notifications_path(self) -> Path:
        """What the receiver got, one JSON line per notification."""
        return self.root / "notifications.jsonl"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def lb_pidfile(self) -> Path:
        return self.root / "run" / "lb.pid"

    @property
    def redis_dir(self) -> Path:
        return self.root / "redis"

    @property
    def redis_pidfile(self) -> Path:
        return self.root / "run" / "redis.pid"

    @property
    def redis_url(self) -> str | None:
        """``redis://127.0.0.1:PORT/0`` of the sandbox's own Redis; None without one."""
        return f"redis://127.0.0.1:{self.redis_port}/0" if self.redis_port else None

    @property
    def url(self) -> str:
        """The load balancer's base URL: the portal's public front."""
        if not self.lb_port:
            raise SandboxError("the sandbox has no load balancer port: create() it first")
        return f"http://127.0.0.1:{self.lb_port}"

    def host(self, name: str) -> SandboxHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    # -- building ----------------------------------------------------------------------------------

    def create(self, extra_config: dict[str, Any] | None = None) -> Path:
        """Build everything under root; returns the config path. A previous sandbox in the
        same root is stopped and replaced; any other non-empty directory is refused."""
        if not (APP_SOURCE / "app.py").is_file():
            raise SandboxError(
                f"the sample portal's source is missing from this installation ({APP_SOURCE}):"
                " install portal-ops from its source tree (pip install -e .)"
            )
        if self.root.exists() and any(self.root.iterdir()):
            if not self.info_path.exists():
                raise SandboxError(
                    f"{self.root} exists and is not a demo sandbox: choose another directory"
                    " (PORTAL_OPS_DEMO_DIR) or empty it"
                )
            Sandbox.load(self.root).remove()
        if self.redis_wanted is not False:
            self.redis_binary = find_redis_server()
            if self.redis_binary is None and self.redis_wanted:
                raise SandboxError(
                    "no redis-server found (install redis-server, or set"
                    f" {REDIS_ENV} to its path); without Redis use Sandbox(..., redis=False)"
                )
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in ("db", "logs", "run", "state", "hosts"):
            (self.root / sub).mkdir(exist_ok=True)
        ports = free_ports(self.host_count + (2 if self.redis_binary else 1))
        self.lb_port = ports[0]
        if self.redis_binary:
            self.redis_port = ports[-1]
            self.redis_dir.mkdir(exist_ok=True)
        self.hosts = [
            SandboxHost(f"host-{n}", ports[n], str(self.root / "hosts" / f"host-{n}"))
            for n in range(1, self.host_count + 1)
        ]
        self._build_repo()
        sqlite3.connect(self.database).close()
        for host in self.hosts:
            (host.storage / "logs").mkdir(parents=True, exist_ok=True)
            (host.storage / "run").mkdir(parents=True, exist_ok=True)
            host.env_file.write_text(
                "# Written by the portal-ops demo sandbox; linked into every release.\n"
                + "".join(f"{k}={v}\n" for k, v in self.env_for(host).items())
            )
        data = self.config_data()
        if extra_config:
            _merge(data, extra_config)
        self.config_path.write_text(
            "# The portal-ops demo sandbox: every host is a directory on this machine.\n"
            + dump_toml(data)
        )
        self._save()
        return self.config_path

    def env_for(self, host: SandboxHost) -> dict[str, str]:
        return {
            "PORT": str(host.port),
            "DATABASE": str(self.database),
            "HOST_NAME": host.name,
            "STORAGE": str(host.storage),
            "BREAK": '""',
            # the portal's feature flags (FlagClient); empty: the portal evaluates none
            "REDIS_URL": self.redis_url or '""',
            "REDIS_PREFIX": "portal-ops",
            # where `backend` (portal-ops' FlagClient) is importable from
            "PORTAL_OPS_PYTHONPATH": str(PROJECT_ROOT),
        }

    def _build_repo(self) -> None:
        self.repo.mkdir()
        self._git("init", "-q")
        self._git("symbolic-ref", "HEAD", "refs/heads/main")
        self._write_tree("1")
        self._git("add", "-A")
        self._git("commit", "-q", "-m", "Business Portal v1")
        self._git("tag", "v1")
        self._write_tree("2")
        self._git("add", "-A")
        message = "Business Portal v2: company features"
        if self.scenario in APP_SCENARIOS:
            message += f" (demo break scenario: {self.scenario})"
        self._git("commit", "-q", "-m", message)
        self._git("tag", "v2")

    def _write_tree(self, version: str) -> None:
        """The release tree of ``version``: the app, its migrations, built assets, VERSION."""
        repo = self.repo
        for name in APP_FILES:
            shutil.copy2(APP_SOURCE / name, repo / name)
        shutil.rmtree(repo / "migrations", ignore_errors=True)
        (repo / "migrations").mkdir()
        files = list(MIGRATIONS[version])
        if version != "1" and self.scenario == "migration":
            files.append(FAILING_MIGRATION)
        for rel in files:
            shutil.copy2(APP_SOURCE / rel, repo / "migrations" / Path(rel).name)
        self._build_assets(version)
        (repo / "VERSION").write_text(f"{version}\n")
        brk = repo / "BREAK"
        if version != "1" and self.scenario in APP_SCENARIOS:
            brk.write_text(f"{self.scenario}\n")
        else:
            brk.unlink(missing_ok=True)
        (repo / ".gitignore").write_text(".env\nstorage\n__pycache__/\n*.pyc\n")
        (repo / "README.md").write_text(
            f"# Business Portal (demo), version {version}\n\n"
            "The sample portal portal-ops deploys in its demo. `python app.py` serves it;\n"
            "`python manage.py --help` lists migrate, status, rollback, dump, restore,\n"
            "restart, stop, down and up. Configuration comes from `.env`.\n"
        )

    def _build_assets(self, version: str) -> None:
        """What `npm run build` would do: content-hashed files and a manifest."""
        build = self.repo / "public" / "build"
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir(parents=True)
        manifest: dict[str, str] = {}
        for source in sorted((APP_SOURCE / "assets").iterdir()):
            text = (
                source.read_text()
                .replace("__VERSION_LABEL__", f"v{version}")
                .replace("__ACCENT__", ACCENTS.get(version, "#444"))
            )
            digest = hashlib.sha256(text.encode()).hexdigest()[:10]
            name = f"{source.stem}-{digest}{source.suffix}"
            (build / name).write_text(text)
            manifest[source.name] = name
        (build / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    def _git(self, *args: str) -> str:
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
        proc = subprocess.run(
            ["git", *GIT_IDENTITY, "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", *args],
            cwd=self.repo,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise SandboxError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def config_data(self) -> dict[str, Any]:
        """The portal-ops.toml content as a dict (valid for backend.config)."""
        py = shlex.quote(sys.executable).replace("{", "{{").replace("}", "}}")
        manage = f"{py} manage.py"
        lb = self.url
        return {
            "portal": {
                "name": "business-portal",
                "repository": str(self.repo),
                "revision": "v2",
                # Required by the schema; each host below sets its own deploy_path.
                "deploy_path": self.hosts[0].deploy_path,
                "recipe": "python",
                "keep_releases": 5,
                "shared_files": [".env"],
                "shared_dirs": ["storage"],
                "asset_dirs": ["public/build"],
                "version_url": f"{lb}/version",
                "public_url": f"{lb}/",
                "on_failure": "rollback",
                "database_rollback": "migrations",
                "maintenance_during_migrations": False,
            },
            "hosts": [
                {
                    "name": h.name,
                    "address": "127.0.0.1",
                    "transport": "local",
                    "deploy_path": h.deploy_path,
                    "roles": ["web", "primary"] if i == 0 else ["web"],
                    "health_url": h.health_url,
                }
                for i, h in enumerate(self.hosts)
            ],
            "rollout": {
                "batches": ["1", "50%", "100%"],
                "drain_seconds": 0.2,
                "health_timeout": 10,
            },
            "load_balancer": {
                "kind": "http",
                "drain_url": f"{lb}/_lb/drain/{{backend}}",
                "enable_url": f"{lb}/_lb/enable/{{backend}}",
            },
            "commands": {
                "install": f"{py} -m compileall -q .",
                "migrate": f"{manage} migrate",
                "migrate_status": f"{manage} status",
                "migrate_rollback": f"{manage} rollback --steps {{{{steps}}}}",
                "db_dump": f"{manage} dump {{{{file}}}}",
                "db_restore": f"{manage} restore {{{{file}}}}",
                "reload": f"{manage} restart",
                "maintenance_on": f"{manage} down",
                "maintenance_off": f"{manage} up",
            },
            "state": {"dir": str(self.state_dir)},
            # Version 2's flag: created off in phase 3, rolled out in phase 8 (a second per
            # step keeps the demo short; a real portal holds minutes). Without Redis the
            # flags live in the store only and the phases still run.
            "flags": {
                "release_flags": [RELEASE_FLAG],
                "rollout_steps": [10, 50, 100],
                "rollout_hold": 1.0,
                "rollout_check_interval": 0.25,
                "gate_timeout": 5.0,
            },
            # publication and usage counts: the sandbox's own redis-server, when it has one
            **({"redis": {"url": url, "prefix": "portal-ops"}} if (url := self.redis_url) else {}),
        }

    # -- sandbox.json --------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "scenario": self.scenario,
            "config": str(self.config_path),
            "repo": str(self.repo),
            "database": str(self.database),
            "state_dir": str(self.state_dir),
            "load_balancer": {
                "port": self.lb_port,
                "url": self.url if self.lb_port else None,
                "pid": self.lb_pid,
                "pidfile": str(self.lb_pidfile),
                "log": str(self.logs_dir / "lb.log"),
            },
            "hosts": [
                {**asdict(h), "url": h.url, "health_url": h.health_url, "pidfile": str(h.pidfile)}
                for h in self.hosts
            ],
            "redis": {
                "port": self.redis_port,
                "url": self.redis_url,
                "binary": self.redis_binary,
                "pid": self.redis_pid,
                "pidfile": str(self.redis_pidfile),
                "log": str(self.logs_dir / "redis.log"),
            },
            "python": sys.executable,
        }

    def _save(self) -> None:
        tmp = self.info_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.info(), indent=2) + "\n")
        os.replace(tmp, self.info_path)

    @classmethod
    def load(cls, root: Path | str) -> Sandbox:
        """The sandbox another process created in ``root`` (for ``stop()``, ``url``...)."""
        path = Path(root).expanduser().resolve() / "sandbox.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise SandboxError(f"no demo sandbox in {root} ({path} is missing)") from None
        except ValueError as exc:
            raise SandboxError(f"{path} is not valid JSON: {exc}") from None
        hosts = [SandboxHost(h["name"], int(h["port"]), h["deploy_path"]) for h in data["hosts"]]
        box = cls(root, hosts=max(1, len(hosts)), scenario=data.get("scenario"))
        box.hosts = hosts
        box.lb_port = int(data["load_balancer"]["port"])
        box.lb_pid = data["load_balancer"].get("pid")
        redis = data.get("redis") or {}
        box.redis_wanted = bool(redis.get("port"))
        box.redis_binary = redis.get("binary")
        box.redis_port = int(redis.get("port") or 0)
        box.redis_pid = redis.get("pid")
        return box

    # -- processes ---------------------------------------------------------------------------------------

    def start_redis(self, timeout: float = 10.0) -> int | None:
        """Start the sandbox's own redis-server, detached (own session), on loopback, with no
        persistence and no root, and wait until it answers PING. Its pid; None when the
        sandbox runs without Redis."""
        if not self.redis_port or not self.redis_binary:
            return None
        if self.redis_pid and pid_alive(self.redis_pid) and _redis_ping(self.redis_port):
            return self.redis_pid
        if port_open(self.redis_port):
            raise SandboxError(f"port {self.redis_port} of the Redis is taken by another process")
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            self.redis_binary,
            "--port", str(self.redis_port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--dir", str(self.redis_dir),
        ]  # fmt: skip
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / "redis.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=self.redis_dir,  # how _strays() recognises it
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self._redis_proc = proc
        self.redis_pid = proc.pid
        self.redis_pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.redis_pidfile.write_text(f"{proc.pid}\n")
        self._save()
        deadline = time.monotonic() + timeout
        while not _redis_ping(self.redis_port):
            if proc.poll() is not None or time.monotonic() > deadline:
                self._terminate([proc.pid])
                self.redis_pid = None
                self.redis_pidfile.unlink(missing_ok=True)
                self._save()
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-10:])
                raise SandboxError(f"redis-server did not start:\n{tail}")
            time.sleep(0.02)
        return proc.pid

    def start_load_balancer(self, timeout: float = 10.0) -> int:
        """Start the front, detached (own session), and wait until it listens. Its pid."""
        if self.lb_pid and pid_alive(self.lb_pid) and port_open(self.lb_port):
            return self.lb_pid
        if port_open(self.lb_port):
            raise SandboxError(
                f"port {self.lb_port} of the load balancer is taken by another process"
            )
        cmd = [sys.executable, "-m", "backend.demo.loadbalancer", "--port", str(self.lb_port)]
        for host in self.hosts:
            cmd += ["--backend", f"{host.name}={host.url}"]
        cmd += ["--pidfile", str(self.lb_pidfile), "--watch", str(self.root)]
        cmd += ["--notify-log", str(self.notifications_path)]
        if self.redis_pid and pid_alive(self.redis_pid):
            # Redis cannot watch the root itself: the front stops it if root is deleted
            cmd += ["--also-stop", str(self.redis_pid)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
        )
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / "lb.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self._lb_proc = proc
        self.lb_pid = proc.pid
        self._save()
        deadline = time.monotonic() + timeout
        while not port_open(self.lb_port):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-10:])
                raise SandboxError(f"the load balancer did not start:\n{tail}")
            time.sleep(0.02)
        return proc.pid

    def app_pids(self) -> dict[str, int | None]:
        """Each host's running app server pid (from its pid file), None when not running."""
        result: dict[str, int | None] = {}
        for host in self.hosts:
            pid = _read_pid(host.pidfile)
            result[host.name] = pid if pid and pid_alive(pid) else None
        return result

    def current_release(self, name: str) -> str | None:
        """The release ``current`` points to on host ``name`` (None before the first deploy)."""
        try:
            return Path(os.readlink(self.host(name).current)).name
        except OSError:
            return None

    def pids(self) -> list[int]:
        """Every live process of this sandbox: the front, the app servers, Redis, strays."""
        found: set[int] = set()
        for pid in (self.lb_pid, _read_pid(self.lb_pidfile), *self._redis_pids()):
            if pid:
                found.add(pid)
        for host in self.hosts:
            pid = _read_pid(host.pidfile)
            if pid:
                found.add(pid)
        found |= self._strays()
        return sorted(p for p in found if pid_alive(p))

    def _redis_pids(self) -> set[int]:
        """The sandbox's redis-server: from sandbox.json, its pid file, or /proc."""
        found = {p for p in (self.redis_pid, _read_pid(self.redis_pidfile)) if p}
        return found | self._strays(redis_only=True)

    def _strays(self, redis_only: bool = False) -> set[int]:
        """App servers, fronts or the Redis whose working directory is inside root (Linux
        /proc), e.g. a server whose pid file was overwritten. Only our kind of process,
        never our own."""
        proc = Path("/proc")
        if not proc.is_dir():
            return set()
        mine = {os.getpid(), os.getppid()}
        found: set[int] = set()
        for entry in proc.iterdir():
            if not entry.name.isdigit() or int(entry.name) in mine:
                continue
            try:
                cwd = Path(os.readlink(entry / "cwd"))
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if not cwd.is_relative_to(self.root):
                continue
            # redis-server rewrites its title: "redis-server 127.0.0.1:PORT"
            is_redis = b"redis-server" in cmdline[0]
            if is_redis or (
                not redis_only
                and (
                    any(p.endswith(b"app.py") for p in cmdline)
                    or b"backend.demo.loadbalancer" in cmdline
                )
            ):
                found.add(int(entry.name))
        return found

    def stop(self) -> list[int]:
        """Stop the front and every app server, then Redis (so the apps' last flag usage
        counts reach it): SIGTERM (graceful), SIGKILL after 10 s. Idempotent and safe from
        another process. Returns the pids that were running."""
        if not self.root.exists():
            return []
        pids = self.pids()
        redis = self._redis_pids()
        self._terminate([p for p in pids if p not in redis])
        self._terminate([p for p in pids if p in redis])
        for proc in (self._lb_proc, self._redis_proc):
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1)
        self._lb_proc = self._redis_proc = None
        for path in [self.lb_pidfile, self.redis_pidfile, *(h.pidfile for h in self.hosts)]:
            path.unlink(missing_ok=True)
        self.lb_pid = self.redis_pid = None
        if self.info_path.exists():
            self._save()
        return pids

    @staticmethod
    def _terminate(pids: list[int]) -> None:
        """SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL what is left."""
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in pids:
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)

    def remove(self) -> None:
        """Stop everything, then delete root."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- the database ------------------------------------------------------------------------------------

    def database_snapshot(self) -> dict[str, Any]:
        """Schema and rows of every table: what "the database as it was" means in a check."""
        conn = sqlite3.connect(f"file:{quote(str(self.database))}?mode=ro", uri=True)
        try:
            schema = sorted(
                (row[0], row[1], row[2] or "")
                for row in conn.execute(
                    "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
                )
            )
            tables = [name for kind, name, _ in schema if kind == "table"]
            rows = {
                t: sorted(tuple(r) for r in conn.execute(f'SELECT * FROM "{t}"')) for t in tables
            }
        finally:
            conn.close()
        return {"schema": schema, "rows": rows}

    def database_digest(self, ignore: tuple[str, ...] = ("schema_migrations",)) -> str:
        """A SHA-256 of the content (schema and rows; migration bookkeeping times excluded)."""
        snap = self.database_snapshot()
        snap["rows"] = {t: r for t, r in snap["rows"].items() if t not in ignore}
        return hashlib.sha256(json.dumps(snap, sort_keys=True, default=str).encode()).hexdigest()


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
