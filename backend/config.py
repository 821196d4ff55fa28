"""portal-ops.toml: loaded, validated, resolved.

A bad file is refused as a whole with every problem listed (file, key, what was expected),
never only the first one: :class:`ConfigError` carries them all and the CLI exits 2.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .checks.config import ValidationConfig
from .flags.config import FlagsConfig
from .monitor.config import MonitorConfig
from .notify.config import NotifyConfig

CONFIG_ENV = "PORTAL_OPS_CONFIG"
DEFAULT_CONFIG = "portal-ops.toml"

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
_BATCH = re.compile(r"^(?:[1-9][0-9]*|(?:[1-9][0-9]?|100)%)$")

Recipe = Literal["generic", "laravel", "python"]
Step = Literal[
    "fetch",
    "link_shared",
    "install",
    "build",
    "maintenance_on",
    "maintenance_off",
    "migrate",
    "migrate_status",
    "migrate_rollback",
    "db_dump",
    "db_restore",
    "reload",
    "restart_workers",
    "cache_clear",
    "health",
]


class ConfigError(Exception):
    """A config file that cannot be used: ``problems`` lists each as ``key: message``."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{self.path}: invalid configuration ({len(self.problems)} problem(s))"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class SSHConfig(Strict):
    known_hosts: str | None = None  # None: ~/.ssh/known_hosts (asyncssh's default)
    identity_files: list[str] = Field(default_factory=list)
    use_agent: bool = True
    connect_timeout: float = Field(10.0, gt=0)
    keepalive_interval: float = Field(15.0, ge=0)
    command_timeout: float = Field(300.0, gt=0)
    max_reconnects: int = Field(3, ge=0)


class HostConfig(Strict):
    name: Annotated[str, Field(pattern=_NAME)]
    address: str = Field(min_length=1)
    port: int = Field(22, ge=1, le=65535)
    user: str | None = None
    roles: list[str] = Field(default_factory=lambda: ["web"])
    jump: str | None = None  # "user@host:port" of a bastion to tunnel through
    transport: Literal["ssh", "local"] = "ssh"
    verify_host_key: bool = True  # explicit opt-out only, per host
    deploy_path: str | None = None  # overrides [portal] deploy_path for this host
    health_url: str | None = None  # overrides [portal] health_url for this host
    backend_name: str | None = None  # the host's name in the load balancer, if different
    base_url: str | None = None  # the app on this host directly (batch analysis smoke pages)

    @property
    def primary(self) -> bool:
        return "primary" in self.roles or "db" in self.roles


class PortalConfig(Strict):
    name: Annotated[str, Field(pattern=_NAME)] = "business-portal"
    repository: str = Field(min_length=1)
    revision: str = "main"
    deploy_path: str = Field(min_length=1)
    recipe: Recipe = "generic"
    keep_releases: int = Field(5, ge=2, le=100)
    shared_dirs: list[str] = Field(default_factory=list)
    shared_files: list[str] = Field(default_factory=list)
    asset_dirs: list[str] = Field(default_factory=list)  # backed up in phase 2
    health_url: str | None = None  # per host; "{address}" and "{name}" are filled in
    version_url: str | None = None
    public_url: str | None = None
    on_failure: Literal["rollback", "pause"] = "rollback"
    database_rollback: Literal["migrations", "dump", "none"] = "migrations"
    maintenance_during_migrations: bool = True
    env: dict[str, str] = Field(default_factory=dict)  # environment for remote commands

    @field_validator("shared_dirs", "shared_files", "asset_dirs")
    @classmethod
    def _relative(cls, value: list[str]) -> list[str]:
        for item in value:
            if item.startswith("/") or ".." in Path(item).parts:
                raise ValueError(f"{item!r} must be a path relative to the release")
        return value


class RolloutConfig(Strict):
    batches: list[str] = Field(default_factory=lambda: ["1", "50%", "100%"])
    max_fail_percentage: float = Field(0, ge=0, le=100)
    concurrency: int = Field(10, ge=1, le=500)
    drain_seconds: float = Field(1.0, ge=0)
    health_timeout: float = Field(30.0, gt=0)
    analysis_seconds: float = Field(0.0, ge=0)  # judge each batch this long before the next

    @field_validator("batches")
    @classmethod
    def _batches(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('at least one batch is needed, e.g. ["1", "50%", "100%"]')
        bad = [b for b in value if not _BATCH.match(str(b).strip())]
        if bad:
            raise ValueError(
                f'bad batch spec {bad}: each is a host count ("1", "2") or a percentage'
                ' of the hosts ("50%", 1 to 100)'
            )
        return [str(b).strip() for b in value]


class LoadBalancerConfig(Strict):
    kind: Literal["none", "http", "command", "haproxy"] = "none"
    drain_url: str | None = None  # "{backend}" is filled in; POSTed
    enable_url: str | None = None
    drain_command: str | None = None  # run on the portal-ops machine; "{backend}" filled, quoted
    enable_command: str | None = None
    # kind = "haproxy": the runtime API (a Unix socket path, or "host:port" for TCP) and the
    # backend holding the hosts; a host's server is its backend_name (or "backend/server")
    socket: str | None = None
    backend: str | None = None
    drain_timeout: float = Field(30.0, gt=0)  # haproxy: wait for sessions to end, at most
    poll_interval: float = Field(0.1, gt=0)  # haproxy: how often show stat is read meanwhile
    timeout: float = Field(40.0, gt=0)  # one drain/enable call (URL, command, runtime API)

    @model_validator(mode="after")
    def _complete(self) -> LoadBalancerConfig:
        if self.kind == "http" and not (self.drain_url and self.enable_url):
            raise ValueError('kind = "http" needs drain_url and enable_url')
        if self.kind == "command" and not (self.drain_command and self.enable_command):
            raise ValueError('kind = "command" needs drain_command and enable_command')
        if self.kind == "haproxy":
            if not self.socket:
                raise ValueError(
                    'kind = "haproxy" needs socket: the runtime API, a Unix socket path'
                    ' ("/run/haproxy/admin.sock") or "host:port"'
                )
            if not self.socket.startswith("/") and not re.match(
                r"^\[?[^/\s]+\]?:\d+$", self.socket
            ):
                raise ValueError(
                    f"socket {self.socket!r}: give an absolute Unix socket path or host:port"
                )
            if not self.backend:
                raise ValueError('kind = "haproxy" needs backend: the HAProxy backend of the hosts')
        return self


class RedisConfig(Strict):
    url: str | None = None  # e.g. redis://127.0.0.1:6379/0; None: no Redis
    prefix: str = "portal-ops"


class UIConfig(Strict):
    """The control room's defaults; ``--theme`` and ``$PORTAL_OPS_THEME`` win over them."""

    theme: str | None = None  # portal-dark, portal-light, portal-high-contrast, ansi-dark...


class StateConfig(Strict):
    dir: str | None = None


class Config(Strict):
    portal: PortalConfig
    hosts: list[HostConfig] = Field(min_length=1)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    ssh: SSHConfig = Field(default_factory=SSHConfig)
    commands: dict[Step, str] = Field(default_factory=dict)
    load_balancer: LoadBalancerConfig = Field(default_factory=LoadBalancerConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    ui: UIConfig = Field(default_factory=UIConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    flags: FlagsConfig = Field(default_factory=FlagsConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)

    source: str = Field("", exclude=True)  # the file it came from

    @model_validator(mode="after")
    def _unique_hosts(self) -> Config:
        names = [h.name for h in self.hosts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"host names must be unique; repeated: {', '.join(dupes)}")
        return self

    def deploy_path(self, host: HostConfig) -> str:
        return host.deploy_path or self.portal.deploy_path

    def primary_host(self) -> HostConfig:
        """The one host where migrations and dumps run (role "primary"/"db", else the first)."""
        for host in self.hosts:
            if host.primary:
                return host
        return self.hosts[0]

    def host(self, name: str) -> HostConfig:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)


def resolve_config_path(explicit: str | None) -> Path:
    """``--config`` first, then ``$PORTAL_OPS_CONFIG``, then ``./portal-ops.toml``."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return Path(DEFAULT_CONFIG)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    file = resolve_config_path(str(path) if path else None)
    if not file.exists():
        raise ConfigError(
            str(file),
            [
                "file not found (give --config FILE, set PORTAL_OPS_CONFIG, or create"
                " ./portal-ops.toml; `portal-ops demo up` writes one you can try)"
            ],
        )
    try:
        raw = tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(file), [f"not valid TOML: {exc}"]) from None
    except OSError as exc:
        raise ConfigError(str(file), [f"cannot read: {exc.strerror}"]) from None
    return parse_config(raw, str(file))


def parse_config(raw: dict[str, Any], source: str = "<config>") -> Config:
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(err, raw) for err in exc.errors()]) from None
    config.source = source
    return config


def _describe(err: Any, raw: dict[str, Any]) -> str:
    loc = _location(err["loc"], raw)
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{loc}: unknown key"
    if kind == "missing":
        return f"{loc}: required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    if "input" in err and kind not in ("model_type",) and not isinstance(err["input"], dict):
        return f"{loc}: {msg} (got {err['input']!r})"
    return f"{loc}: {msg}"


def _location(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    """``hosts.1.address`` becomes ``hosts[1] (web-2).address``: the name helps find it."""
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict):
                name = node[item].get("name")
                if name:
                    label += f" ({name})"
            parts[-1] = parts[-1] + label if parts else label
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"
