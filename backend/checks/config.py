"""Configuration of the validation phases (``[validation]`` in portal-ops.toml).

Everything a check measures against is here: thresholds, weights, which checks veto the
deployment, which are disabled (only with a reason, which the report shows) and the
commands and probes that say how to measure a portal. A check whose probe is not
configured is reported ``skipped`` with the reason, never passed.
"""

from __future__ import annotations

import re
from dataclasses import field
from typing import Annotated, Any, Literal

from ..durations import Duration
from ..schema import Check, Length, Limits, Pattern, Section, section

PRE_IDS = tuple(f"P{n:02d}" for n in range(1, 16))
POST_IDS = tuple(f"Q{n:02d}" for n in range(1, 19))
CHECK_IDS = PRE_IDS + POST_IDS

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOG_GLOB = re.compile(r"^[A-Za-z0-9._*-]+$")


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


@section
class CommandProbe(Section):
    """A command a check runs, as a string or a table.

    ``on`` says where: ``primary`` (the primary host), ``all`` (every host, narrowed by
    ``roles``) or ``local`` (the portal-ops machine). On hosts it runs in ``cwd``: relative
    to the deploy path (default: the release being validated, i.e. ``current`` before the
    switch and the new release after it). ``expect`` is a regular expression the output
    must match, for commands that exit 0 whatever they find.
    """

    command: Annotated[str, Length(min=1)]
    on: Literal["primary", "all", "local"] | None = None  # None: the check's own default
    roles: list[str] = field(default_factory=list)
    cwd: str | None = None
    expect: Annotated[str, Check(_regex)] | None = None

    @classmethod
    def _shorthand(cls, raw: Any) -> Any:
        return {"command": raw} if isinstance(raw, str) else raw


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError("must be an environment variable name, e.g. CALCOM_API_KEY")
    return value


@section
class ApiProbe(Section):
    """One external API key to prove valid (P14): the key comes from ``key_env``.

    The key is sent in ``header`` (with ``prefix``, e.g. ``"Bearer "``), or put into the
    URL where it says ``{key}``. It never appears in a report, an event or the screen.
    """

    name: Annotated[str, Length(min=1)]
    url: Annotated[str, Pattern(r"^https?://")]
    key_env: Annotated[str, Check(_env_name)]
    header: str | None = "Authorization"
    prefix: str = "Bearer "
    method: Literal["GET", "HEAD", "POST"] = "GET"


@section
class SmokePage(Section):
    """A page fetched through the public URL after the switch (Q07)."""

    path: Annotated[str, Length(min=1)]  # "/login", or a full URL
    status: Annotated[int, Limits(ge=100, le=599)] = 200
    text: str | None = None  # must appear in the body
    method: Literal["GET", "HEAD", "POST"] = "GET"
    key_env: str | None = None  # a test token for API routes, sent in `header`
    header: str = "Authorization"
    prefix: str = "Bearer "

    @classmethod
    def _shorthand(cls, raw: Any) -> Any:
        return {"path": raw} if isinstance(raw, str) else raw


def _known_ids(value: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(k for k in value if k not in CHECK_IDS)
    if unknown:
        raise ValueError(f"unknown check id(s) {unknown}: use P01..P15 (pre) or Q01..Q18 (post)")
    return value


def _weights(value: dict[str, float]) -> dict[str, float]:
    bad = sorted(k for k, w in value.items() if not 0 <= w <= 100)
    if bad:
        raise ValueError(f"weights must be between 0 and 100 (check {', '.join(bad)})")
    return value


def _reasons(value: dict[str, str]) -> dict[str, str]:
    missing = sorted(k for k, reason in value.items() if len(reason.strip()) < 3)
    if missing:
        raise ValueError(
            f'a disabled check needs a reason, e.g. {missing[0]} = "no PHPStan in this'
            f' project" (missing for {", ".join(missing)})'
        )
    return value


def _log_path(value: str) -> str:
    name = value.rstrip("/").rsplit("/", 1)[-1]
    head = value[: len(value) - len(name)]
    if "*" in head or not _LOG_GLOB.match(name):
        raise ValueError(
            "a path whose file name may hold '*' (letters, digits, . _ - *),"
            " e.g. shared/storage/logs/laravel-*.log"
        )
    return value


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError('must be "host:port", e.g. "portal.example.com:443"')
    return value


def _zone(value: str) -> str:
    if value != "local":
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError('"local" or a time zone name such as "UTC"') from None
    return value


@section
class ValidationConfig(Section):
    pass_score: Annotated[float, Limits(ge=0, le=100)] = (
        90.0  # go at or above, when no critical failed
    )
    timeout: Annotated[Duration, Limits(gt=0)] = 20.0  # seconds per check (and per command in it)
    http_timeout: Annotated[Duration, Limits(gt=0)] = 5.0  # seconds per HTTP request
    max_sessions_per_host: Annotated[int, Limits(ge=1, le=10)] = (
        4  # concurrent commands per connection
    )
    # concurrent commands over all hosts: 33 checks on 50 hosts at once would otherwise
    # start ~1,600 remote shells together and time out on the slowest machine
    max_commands: Annotated[int, Limits(ge=1, le=1000)] = 32
    ca_file: str | None = None  # extra CA bundle for HTTPS checks (private CAs)

    weights: Annotated[dict[str, float], Check(_known_ids), Check(_weights)] = field(
        default_factory=dict
    )
    critical: Annotated[dict[str, bool], Check(_known_ids)] = field(default_factory=dict)
    # id -> reason (required)
    disabled: Annotated[dict[str, str], Check(_known_ids), Check(_reasons)] = field(
        default_factory=dict
    )

    # P03 quality gate, P04 coverage, P05 dependency audit (default: run locally)
    quality_gate: CommandProbe | None = None
    coverage_report: str | None = None  # Clover XML, Cobertura XML or a plain percentage
    coverage_on: Literal["local", "primary"] = "local"
    coverage_min: Annotated[float, Limits(ge=0, le=100)] = 60.0
    audit: CommandProbe | None = None  # composer audit / pip-audit / npm audit, JSON output
    audit_fail_severities: list[str] = field(default_factory=lambda: ["critical"])
    audit_unknown_severity: Literal["fail", "warn"] = "fail"

    # P06/Q17 disk, P07/Q18 memory, P08 load
    disk_free_warn_below: Annotated[float, Limits(ge=0, le=100)] = 20.0  # percent free
    disk_free_fail_below: Annotated[float, Limits(ge=0, le=100)] = 10.0
    memory_warn_above: Annotated[float, Limits(ge=0, le=100)] = 80.0  # percent used
    memory_fail_above: Annotated[float, Limits(ge=0, le=100)] = 90.0
    load_warn_above: Annotated[float, Limits(ge=0)] = (
        1.0  # 5-minute load average per core: 1 = saturated
    )
    load_fail_above: Annotated[float, Limits(ge=0)] = 2.0

    # P09/Q10 database and cache, P10 Redis
    database: CommandProbe | None = None
    cache: CommandProbe | None = None
    redis_url: str | None = None  # default: [redis] url; its password is never shown
    redis_command: CommandProbe | None = None  # e.g. "redis-cli ping" on every host

    # P11 backups, P12 web and app servers
    backup_dir: str = ".portal-ops/backups"  # relative to the deploy path
    backup_min_free_mb: Annotated[float, Limits(ge=0)] = 100.0
    server_commands: list[CommandProbe] = field(default_factory=list)

    # P13 TLS certificate, Q15 security headers
    # "host:port"; default: the public URL if it is https
    tls_target: Annotated[str, Check(_host_port)] | None = None
    tls_server_name: str | None = None  # SNI and the name verified; default: the host
    tls_warn_days: Annotated[float, Limits(ge=0)] = 30.0
    tls_fail_days: Annotated[float, Limits(ge=0)] = 14.0
    security_headers: list[str] = field(
        default_factory=lambda: [
            "Strict-Transport-Security",
            "X-Content-Type-Options",
            "X-Frame-Options|Content-Security-Policy",
        ]
    )

    # P14 external API keys
    api_probes: list[ApiProbe] = field(default_factory=list)

    # Q03 public health, Q05 latency, Q06 error rate, Q07 smoke pages, Q08 assets
    public_health_path: str | None = None  # default: the path of [portal] health_url
    latency_paths: list[str] = field(default_factory=lambda: ["/"])
    latency_samples: Annotated[int, Limits(ge=1, le=1000)] = 20
    latency_warn_ms: Annotated[float, Limits(gt=0)] = 200.0
    latency_fail_ms: Annotated[float, Limits(gt=0)] = 500.0
    error_rate_paths: list[str] = field(default_factory=lambda: ["/"])
    error_rate_samples: Annotated[int, Limits(ge=1, le=10000)] = 100
    error_rate_concurrency: Annotated[int, Limits(ge=1, le=50)] = 5
    error_rate_warn_percent: Annotated[float, Limits(ge=0, le=100)] = 0.1
    error_rate_fail_percent: Annotated[float, Limits(ge=0, le=100)] = 1.0
    # Q04: a dotted key path into the version endpoint's JSON ("revision", "git.sha",
    # "versions.0.revision"); without it any value of the document may match
    version_key: Annotated[str, Pattern(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")] | None = None
    # Q05/Q06 in a deployment: measured the same way before the switch (the baseline), and
    # judged against baseline_factor x it, the absolute lines above being the floor
    relative_to_baseline: bool = True
    baseline_factor: Annotated[float, Limits(gt=1)] = 2.0
    smoke_pages: list[SmokePage] = field(default_factory=list)
    asset_manifest: str | None = None  # relative to the release, e.g. public/build/manifest.json
    asset_base: str = "/build/"  # URL path the manifest's files are served under
    asset_limit: Annotated[int, Limits(ge=1, le=1000)] = 50

    # Q09 migrations (default: [commands] migrate_status or the recipe's), Q11-Q13
    migrate_status: CommandProbe | None = None
    queue_command: CommandProbe | None = None
    scheduler_command: CommandProbe | None = None
    pool_status_url: str | None = None  # php-fpm status (?json); "{address}" filled per host
    pool_command: CommandProbe | None = None

    # Q14 new errors in the app log since the switch
    # relative to the deploy path; the file name may hold a "*"
    app_log: Annotated[str, Check(_log_path)] | None = None
    log_error_pattern: Annotated[str, Check(_regex)] = r"\b(ERROR|CRITICAL|ALERT|EMERGENCY)\b"
    # the zone of the log's timestamps: "local", "UTC", ...
    log_timezone: Annotated[str, Check(_zone)] = "local"
    log_tail_lines: Annotated[int, Limits(ge=10, le=1_000_000)] = 5000
    log_errors_warn_above: Annotated[int, Limits(ge=0)] = 0
    log_errors_fail_above: Annotated[int, Limits(ge=0)] = 0

    def _consistent(self) -> None:
        pairs = [
            (
                "disk_free_fail_below",
                "disk_free_warn_below",
                self.disk_free_fail_below,
                self.disk_free_warn_below,
            ),
            (
                "memory_warn_above",
                "memory_fail_above",
                self.memory_warn_above,
                self.memory_fail_above,
            ),
            ("load_warn_above", "load_fail_above", self.load_warn_above, self.load_fail_above),
            ("tls_fail_days", "tls_warn_days", self.tls_fail_days, self.tls_warn_days),
            ("latency_warn_ms", "latency_fail_ms", self.latency_warn_ms, self.latency_fail_ms),
            (
                "error_rate_warn_percent",
                "error_rate_fail_percent",
                self.error_rate_warn_percent,
                self.error_rate_fail_percent,
            ),
            (
                "log_errors_warn_above",
                "log_errors_fail_above",
                self.log_errors_warn_above,
                self.log_errors_fail_above,
            ),
        ]
        for low_name, high_name, low, high in pairs:
            if low > high:
                raise ValueError(f"{low_name} ({low}) must not be above {high_name} ({high})")
