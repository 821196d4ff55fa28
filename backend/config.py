"""portal-ops.toml: loaded, validated, resolved.

A bad file is refused as a whole with every problem listed (file, key, what was expected),
never only the first one: :class:`ConfigError` carries them all and the CLI exits 2.
"""

from __future__ import annotations

import os
import posixpath
import re
import tomllib
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

from .checks.config import ValidationConfig
from .durations import Duration
from .flags.config import FlagsConfig
from .monitor.config import MonitorConfig
from .notify.config import NotifyConfig
from .observe.config import MetricsConfig
from .redact import register_config
from .schema import (
    INTERNAL,
    Check,
    Length,
    Limits,
    Pattern,
    Problem,
    SchemaError,
    Section,
    parse,
    section,
)
from .shell import IDENTIFIER, template_problems

CONFIG_ENV = "PORTAL_OPS_CONFIG"
DEFAULT_CONFIG = "portal-ops.toml"

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
_BATCH = re.compile(r"^(?:[1-9][0-9]*|(?:[1-9][0-9]?|100)%)$")

Recipe = Literal["generic", "laravel", "python", "django"]
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


# The ``{{name}}`` placeholders each configured command may use (see backend.shell.fill).
_RELEASE_VALUES = frozenset({"release", "deploy_path", "shared"})
STEP_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "install": _RELEASE_VALUES,
    "build": _RELEASE_VALUES,
    "reload": _RELEASE_VALUES,
    "restart_workers": _RELEASE_VALUES,
    "migrate_rollback": frozenset({"steps"}),
    "db_dump": frozenset({"file"}),
    "db_restore": frozenset({"file"}),
}
LB_PLACEHOLDERS = frozenset({"backend"})


# Never a deploy path: a deploy creates releases/, shared/ and current inside it.
SYSTEM_DIRS = frozenset(
    [
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/media",
        "/mnt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/sys",
        "/tmp",
        "/usr",
        "/usr/bin",
        "/usr/lib",
        "/usr/local",
        "/usr/sbin",
        "/usr/share",
        "/var",
        "/var/lib",
        "/var/log",
        "/var/run",
        "/var/tmp",
    ]
)


def check_deploy_path(value: str | None) -> str | None:
    """Absolute, normalised, and not ``/`` or a system directory."""
    if value is None:
        return value
    if not value.startswith("/"):
        raise ValueError("must be an absolute path (e.g. /var/www/portal)")
    if posixpath.normpath(value) != value or value.startswith("//"):
        raise ValueError(f"must be normalised: write {posixpath.normpath(value)!r}")
    if value in SYSTEM_DIRS:
        raise ValueError("is / or a system directory; give the portal a directory of its own")
    return value


def check_relative(item: str) -> str:
    """A path inside the release: relative, non-empty, normalised, no ``..``, not ``.``."""
    if not item or item.strip() != item:
        raise ValueError(f"{item!r} must be a non-empty path relative to the release")
    if item.startswith("/") or ".." in item.split("/"):
        raise ValueError(f"{item!r} must be a path relative to the release, without '..'")
    if posixpath.normpath(item) in (".", "") or any(ord(c) < 32 for c in item):
        raise ValueError(f"{item!r} must name a file or folder inside the release, not '.'")
    if posixpath.normpath(item) != item:
        raise ValueError(f"{item!r} must be normalised: write {posixpath.normpath(item)!r}")
    return item


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


_JUMP = r"^(?:[^@\s]+@)?(?:\[[0-9A-Fa-f:.]+\]|[^:@\s\[\]]+)(?::[0-9]{1,5})?$"
_POSITIVE = Limits(gt=0)


def _relative_items(value: list[str]) -> list[str]:
    return [check_relative(item) for item in value]


def _env_names(value: dict[str, str]) -> dict[str, str]:
    bad = [k for k in value if not IDENTIFIER.match(k)]
    if bad:
        raise ValueError(f"environment names must be shell identifiers (letters, digits, _): {bad}")
    return value


DeployPath = Annotated[str, Length(min=1), Check(check_deploy_path)]
RelativePaths = Annotated[list[str], Check(_relative_items)]


@section
class SSHConfig(Section):
    known_hosts: str | None = None  # None: ~/.ssh/known_hosts (asyncssh's default)
    identity_files: list[str] = field(default_factory=list)
    use_agent: bool = True
    connect_timeout: Annotated[Duration, _POSITIVE] = 10.0
    keepalive_interval: Annotated[Duration, Limits(ge=0)] = 15.0
    command_timeout: Annotated[Duration, _POSITIVE] = 300.0
    max_reconnects: Annotated[int, Limits(ge=0)] = 3
    # OpenSSH client config for what a host entry leaves out (User, Port, HostName,
    # IdentityFile...); None: ~/.ssh/config, as ssh(1) reads it
    config_file: str | None = None
    # logins in flight at once (bastion included); 5 like Ansible's forks, half of
    # OpenSSH's MaxStartups 10 where a server starts refusing unauthenticated connections
    max_connections: Annotated[int, Limits(ge=1, le=100)] = 5
    # one remote shell per host carries its commands (a channel each when off: one more
    # sshd session, login shell and sh per command, and a round trip to open it; what the
    # host's sshd logs as the command is then each command rather than the shell)
    reuse_session: bool = True
    # per-step limits over command_timeout, e.g. { migrate = 1800 }: a step past its limit
    # is killed on the host (its whole process group), not left running
    step_timeouts: dict[str, Annotated[Duration, _POSITIVE]] = field(default_factory=dict)


@section
class HostConfig(Section):
    name: Annotated[str, Pattern(_NAME)]
    address: Annotated[str, Length(min=1)]
    port: Annotated[int | None, Limits(ge=1, le=65535)] = None  # None: ssh_config's, else 22
    user: str | None = None  # None: ssh_config's User, else the local login name
    roles: list[str] = field(default_factory=lambda: ["web"])
    # "[user@]host[:port]" of a bastion to tunnel through; one login shared by its hosts
    jump: Annotated[str, Pattern(_JUMP)] | None = None
    transport: Literal["ssh", "local"] = "ssh"
    verify_host_key: bool = True  # explicit opt-out only, per host
    deploy_path: DeployPath | None = None  # overrides [portal] deploy_path for this host
    health_url: str | None = None  # overrides [portal] health_url for this host
    backend_name: str | None = None  # the host's name in the load balancer, if different
    base_url: str | None = None  # the app on this host directly (batch analysis smoke pages)

    @property
    def primary(self) -> bool:
        return "primary" in self.roles or "db" in self.roles


@section
class PortalConfig(Section):
    name: Annotated[str, Pattern(_NAME)] = "business-portal"
    repository: Annotated[str, Length(min=1)]
    revision: str = "main"
    deploy_path: DeployPath
    recipe: Recipe = "generic"
    php_fpm_service: str | None = None  # laravel's reload; default: the php*-fpm unit running
    keep_releases: Annotated[int, Limits(ge=2, le=100)] = 5
    shared_dirs: RelativePaths = field(default_factory=list)
    shared_files: RelativePaths = field(default_factory=list)
    asset_dirs: RelativePaths = field(default_factory=list)  # backed up in phase 2
    # left out of the phase 2 code archive (rebuilt by install, large)
    backup_exclude: list[str] = field(default_factory=lambda: [".venv", "node_modules"])
    health_url: str | None = None  # per host; "{address}" and "{name}" are filled in
    version_url: str | None = None
    public_url: str | None = None
    on_failure: Literal["rollback", "pause"] = "rollback"
    database_rollback: Literal["migrations", "dump", "none"] = "migrations"
    maintenance_during_migrations: bool = True
    # environment for remote commands
    env: Annotated[dict[str, str], Check(_env_names)] = field(default_factory=dict)


def _batches(value: list[str]) -> list[str]:
    if not value:
        raise ValueError('at least one batch is needed, e.g. ["1", "50%", "100%"]')
    bad = [b for b in value if not _BATCH.match(str(b).strip())]
    if bad:
        raise ValueError(
            f'bad batch spec {bad}: each is a host count ("1", "2") or a percentage'
            ' of the hosts ("50%", 1 to 100)'
        )
    return [str(b).strip() for b in value]


@section
class RolloutConfig(Section):
    batches: Annotated[list[str], Check(_batches)] = field(
        default_factory=lambda: ["1", "50%", "100%"]
    )
    max_fail_percentage: Annotated[float, Limits(ge=0, le=100)] = 0
    concurrency: Annotated[int, Limits(ge=1, le=500)] = 10
    drain_seconds: Annotated[Duration, Limits(ge=0)] = 1.0
    health_timeout: Annotated[Duration, _POSITIVE] = 30.0
    # judge each batch this long before the next
    analysis_seconds: Annotated[Duration, Limits(ge=0)] = 0.0
    # traffic analysis (HAProxy stats): fewer requests to the switched hosts is inconclusive;
    # bad is worse than analysis_factor x the hosts not yet switched (and past a floor)
    analysis_min_requests: Annotated[int, Limits(ge=1)] = 20
    analysis_factor: Annotated[float, Limits(gt=1)] = 2.0


@section
class LoadBalancerConfig(Section):
    kind: Literal["none", "http", "command", "haproxy"] = "none"
    drain_url: str | None = None  # "{backend}" is filled in, URL-encoded; POSTed
    enable_url: str | None = None
    drain_command: str | None = None  # run on the portal-ops machine; "{{backend}}" quoted
    enable_command: str | None = None
    # kind = "haproxy": the runtime API (a Unix socket path, or "host:port" for TCP) and the
    # backend holding the hosts; a host's server is its backend_name (or "backend/server")
    socket: str | None = None
    backend: str | None = None
    drain_timeout: Annotated[Duration, _POSITIVE] = 30.0  # haproxy: wait for sessions to end
    poll_interval: Annotated[Duration, _POSITIVE] = 0.1  # haproxy: show stat read this often
    timeout: Annotated[Duration, _POSITIVE] = 40.0  # one drain/enable (URL, command, API)

    def _consistent(self) -> None:
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


@section
class RedisConfig(Section):
    url: str | None = None  # e.g. redis://127.0.0.1:6379/0; None: no Redis
    prefix: str = "portal-ops"


@section
class LockConfig(Section):
    """The deploy lock's lease: renewed every ``heartbeat_seconds`` while a run lives; a lock
    not renewed for ``lease_seconds`` is stale (shown so; cleared with ``portal-ops unlock``)."""

    heartbeat_seconds: Annotated[Duration, Limits(gt=0, le=300)] = 5.0
    lease_seconds: Annotated[Duration, Limits(gt=0, le=3600)] = 30.0

    def _consistent(self) -> None:
        if self.lease_seconds < 3 * self.heartbeat_seconds:
            raise ValueError("lease_seconds must be at least 3 x heartbeat_seconds")


@section
class UIConfig(Section):
    """The control room's defaults; ``--theme`` and ``$PORTAL_OPS_THEME`` win over them."""

    theme: str | None = None  # portal-dark, portal-light, portal-high-contrast, ansi-dark...
    # binding id -> keys ("wrap" = "x", "zoom" = "Z,ctrl+z"); ids are checked by the room
    keys: dict[str, str] = field(default_factory=dict)


def _directory(value: str) -> str:
    path = Path(value).expanduser()
    if not value.strip():
        raise ValueError("must name a directory")
    if path.exists() and not path.is_dir():
        raise ValueError(f"{value!r} exists and is not a directory")
    return value


@section
class StateConfig(Section):
    dir: Annotated[str, Check(_directory)] | None = None


@section
class InventoryConfig(Section):
    """Hosts from an Ansible inventory, added to ``[[hosts]]`` (backend/fleet/inventory.py)."""

    file: Annotated[str, Length(min=1)]  # JSON of ansible-inventory --list, INI or YAML
    groups: list[str] = field(default_factory=list)  # only hosts in these groups; [] all
    roles: dict[str, str] = field(default_factory=dict)  # group -> role, e.g. dbservers = "db"


HOOK_PLACEHOLDERS = frozenset({"deployment_id", "release", "phase", "host"})


def _known_phase(value: str) -> str:
    from .phases import DEPLOY_PHASES, ROLLBACK_PHASES

    names = [n for n, _ in DEPLOY_PHASES + ROLLBACK_PHASES]
    if value not in names:
        raise ValueError(f"unknown phase {value!r} (phases: {', '.join(names)})")
    return value


@section
class HookConfig(Section):
    """A command run before or after a phase; a failure fails that phase."""

    phase: Annotated[str, Check(_known_phase)]
    run: Annotated[str, Length(min=1)]
    # local: on the portal-ops machine; hosts: on every host of the run; primary: one host
    on: Literal["local", "hosts", "primary"] = "local"
    timeout: Annotated[Duration, _POSITIVE] = 300.0


@section
class HooksConfig(Section):
    before: list[HookConfig] = field(default_factory=list)
    after: list[HookConfig] = field(default_factory=list)


@section
class Config(Section):
    portal: PortalConfig
    hosts: Annotated[list[HostConfig], Length(min=1)]
    inventory: InventoryConfig | None = None
    hooks: HooksConfig = field(default_factory=HooksConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    ssh: SSHConfig = field(default_factory=SSHConfig)
    commands: dict[Step, str] = field(default_factory=dict)
    load_balancer: LoadBalancerConfig = field(default_factory=LoadBalancerConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    lock: LockConfig = field(default_factory=LockConfig)
    state: StateConfig = field(default_factory=StateConfig)
    ui: UIConfig = field(default_factory=UIConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    flags: FlagsConfig = field(default_factory=FlagsConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    # set by the loader, never read from a file
    source: str = field(default="", metadata=INTERNAL)  # the file it came from
    environment: str | None = field(default=None, metadata=INTERNAL)  # -e NAME: overlay merged
    sources: dict[str, str] = field(default_factory=dict, metadata=INTERNAL)  # key -> its file
    limit: list[str] | None = field(default=None, metadata=INTERNAL)  # --hosts/--roles: chosen
    fleet: list[str] = field(default_factory=list, metadata=INTERNAL)  # every host, if limited

    def _consistent(self) -> None:
        names = [h.name for h in self.hosts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"host names must be unique; repeated: {', '.join(dupes)}")

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
    """``--config`` first, then ``$PORTAL_OPS_CONFIG``, then ``portal-ops.toml`` in this
    directory or a parent, then ``$XDG_CONFIG_HOME/portal-ops/`` (backend/configfiles.py)."""
    from .configfiles import discover

    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return discover() or Path(DEFAULT_CONFIG)


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(file), [f"not valid TOML: {exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            str(file), [f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at {exc.start})"]
        ) from None
    except OSError as exc:
        raise ConfigError(str(file), [f"cannot read: {exc.strerror}"]) from None


def load_config(
    path: str | os.PathLike[str] | None = None, environment: str | None = None
) -> Config:
    """The config file (found as :func:`resolve_config_path` says), the overlay of
    ``environment`` deep-merged over it, the Ansible inventory's hosts added, validated."""
    from .configfiles import ENVIRONMENT, merge, overlay_path, record, search_path

    file = resolve_config_path(str(path) if path else None)
    if not file.exists():
        looked = (
            ""
            if path or os.environ.get(CONFIG_ENV)
            else ("; looked in: " + ", ".join(str(p) for p in search_path()))
        )
        raise ConfigError(
            str(file),
            [
                "file not found (give --config FILE, set PORTAL_OPS_CONFIG, or create"
                " ./portal-ops.toml; `portal-ops demo up` writes one you can try)" + looked
            ],
        )
    raw = _read_toml(file)
    sources: dict[str, str] = {}
    record(raw, sources, str(file))
    if environment:
        if not ENVIRONMENT.match(environment):
            raise ConfigError(
                str(file), [f"--env: bad environment name {environment!r} (letters, digits, -, _)"]
            )
        extra = overlay_path(file, environment)
        if not extra.is_file():
            raise ConfigError(
                str(extra), [f"--env {environment}: overlay file not found ({extra})"]
            )
        raw = merge(raw, _read_toml(extra), sources, str(extra))
    raw = _with_inventory(raw, file, sources)
    config = parse_config(raw, str(file))
    config.environment = environment
    config.sources = sources
    return config


def _with_inventory(raw: dict[str, Any], file: Path, sources: dict[str, str]) -> dict[str, Any]:
    """``[inventory] file``'s hosts appended to ``hosts`` (relative to the config file)."""
    inventory = raw.get("inventory")
    if not isinstance(inventory, dict) or not isinstance(inventory.get("file"), str):
        return raw  # absent, or malformed: the model's validation names it
    from .fleet.inventory import InventoryError, host_entries, read_inventory

    where = Path(inventory["file"]).expanduser()
    if not where.is_absolute():
        where = file.parent / where
    groups = inventory.get("groups") if isinstance(inventory.get("groups"), list) else None
    roles = inventory.get("roles") if isinstance(inventory.get("roles"), dict) else None
    try:
        entries = host_entries(read_inventory(where), groups=groups, roles=roles)
    except InventoryError as exc:
        raise ConfigError(str(file), [f"inventory.file: {exc}"]) from None
    hosts = raw.get("hosts")
    if not isinstance(hosts, list):
        hosts = []
    if entries and "hosts" not in sources:
        sources["hosts"] = str(where)
    return {**raw, "hosts": [*hosts, *entries]}


def parse_config(raw: dict[str, Any], source: str = "<config>") -> Config:
    problems = template_errors(raw)
    try:
        config = parse(Config, raw)
    except SchemaError as exc:
        problems = [_describe(problem, raw) for problem in exc.problems] + problems
        raise ConfigError(source, problems) from None
    if problems:
        raise ConfigError(source, problems)
    config.source = source
    register_config(config)  # its secrets are masked in every output from now on
    return config


def template_errors(raw: dict[str, Any]) -> list[str]:
    """Every command template whose placeholders are unknown for its step or quoted."""
    # (key, template, placeholders): a template that is not a string is the model's to refuse
    found: list[tuple[str, object, frozenset[str]]] = []
    commands = raw.get("commands")
    if isinstance(commands, dict):
        for step, template in commands.items():
            found.append((f"commands.{step}", template, STEP_PLACEHOLDERS.get(step, frozenset())))
    lb = raw.get("load_balancer")
    if isinstance(lb, dict):
        for key in ("drain_command", "enable_command"):
            found.append((f"load_balancer.{key}", lb.get(key), LB_PLACEHOLDERS))
    hooks = raw.get("hooks")
    if isinstance(hooks, dict):
        for when in ("before", "after"):
            for i, hook in enumerate(hooks.get(when) or []):
                if isinstance(hook, dict):
                    found.append((f"hooks.{when}[{i}].run", hook.get("run"), HOOK_PLACEHOLDERS))
    return [
        f"{key}: {problem}"
        for key, template, known in found
        if isinstance(template, str)
        for problem in template_problems(template, known)
    ]


def _describe(problem: Problem, raw: dict[str, Any]) -> str:
    loc = _location(problem.loc, raw)
    if problem.has_input and problem.kind != "section" and not isinstance(problem.input, dict):
        return f"{loc}: {problem.message} (got {problem.input!r})"
    return f"{loc}: {problem.message}"


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
