"""Configuration of the validation phases (``[validation]`` in portal-ops.toml).

Everything a check measures against is here: thresholds, weights, which checks veto the
deployment, which are disabled (only with a reason, which the report shows) and the
commands and probes that say how to measure a portal. A check whose probe is not
configured is reported ``skipped`` with the reason, never passed.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..durations import Duration

PRE_IDS = tuple(f"P{n:02d}" for n in range(1, 16))
POST_IDS = tuple(f"Q{n:02d}" for n in range(1, 19))
CHECK_IDS = PRE_IDS + POST_IDS

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOG_GLOB = re.compile(r"^[A-Za-z0-9._*-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class CommandProbe(_Strict):
    """A command a check runs, as a string or a table.

    ``on`` says where: ``primary`` (the primary host), ``all`` (every host, narrowed by
    ``roles``) or ``local`` (the portal-ops machine). On hosts it runs in ``cwd``: relative
    to the deploy path (default: the release being validated, i.e. ``current`` before the
    switch and the new release after it). ``expect`` is a regular expression the output
    must match, for commands that exit 0 whatever they find.
    """

    command: str = Field(min_length=1)
    on: Literal["primary", "all", "local"] | None = None  # None: the check's own default
    roles: list[str] = Field(default_factory=list)
    cwd: str | None = None
    expect: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"command": value} if isinstance(value, str) else value

    @field_validator("expect")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class ApiProbe(_Strict):
    """One external API key to prove valid (P14): the key comes from ``key_env``.

    The key is sent in ``header`` (with ``prefix``, e.g. ``"Bearer "``), or put into the
    URL where it says ``{key}``. It never appears in a report, an event or the screen.
    """

    name: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://")
    key_env: str
    header: str | None = "Authorization"
    prefix: str = "Bearer "
    method: Literal["GET", "HEAD", "POST"] = "GET"

    @field_validator("key_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError("must be an environment variable name, e.g. CALCOM_API_KEY")
        return value


class SmokePage(_Strict):
    """A page fetched through the public URL after the switch (Q07)."""

    path: str = Field(min_length=1)  # "/login", or a full URL
    status: int = Field(200, ge=100, le=599)
    text: str | None = None  # must appear in the body
    method: Literal["GET", "HEAD", "POST"] = "GET"
    key_env: str | None = None  # a test token for API routes, sent in `header`
    header: str = "Authorization"
    prefix: str = "Bearer "

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


class ValidationConfig(_Strict):
    pass_score: float = Field(90.0, ge=0, le=100)  # go at or above, when no critical failed
    timeout: Duration = Field(20.0, gt=0)  # seconds per check (and per command in it)
    http_timeout: Duration = Field(5.0, gt=0)  # seconds per HTTP request
    max_sessions_per_host: int = Field(4, ge=1, le=10)  # concurrent commands per connection
    # concurrent commands over all hosts: 33 checks on 50 hosts at once would otherwise
    # start ~1,600 remote shells together and time out on the slowest machine
    max_commands: int = Field(32, ge=1, le=1000)
    ca_file: str | None = None  # extra CA bundle for HTTPS checks (private CAs)

    weights: dict[str, float] = Field(default_factory=dict)
    critical: dict[str, bool] = Field(default_factory=dict)
    disabled: dict[str, str] = Field(default_factory=dict)  # id -> reason (required)

    # P03 quality gate, P04 coverage, P05 dependency audit (default: run locally)
    quality_gate: CommandProbe | None = None
    coverage_report: str | None = None  # Clover XML, Cobertura XML or a plain percentage
    coverage_on: Literal["local", "primary"] = "local"
    coverage_min: float = Field(60.0, ge=0, le=100)
    audit: CommandProbe | None = None  # composer audit / pip-audit / npm audit, JSON output
    audit_fail_severities: list[str] = Field(default_factory=lambda: ["critical"])
    audit_unknown_severity: Literal["fail", "warn"] = "fail"

    # P06/Q17 disk, P07/Q18 memory, P08 load
    disk_free_warn_below: float = Field(20.0, ge=0, le=100)  # percent free
    disk_free_fail_below: float = Field(10.0, ge=0, le=100)
    memory_warn_above: float = Field(80.0, ge=0, le=100)  # percent used
    memory_fail_above: float = Field(90.0, ge=0, le=100)
    load_warn_above: float = Field(1.0, ge=0)  # 5-minute load average per core: 1 = saturated
    load_fail_above: float = Field(2.0, ge=0)

    # P09/Q10 database and cache, P10 Redis
    database: CommandProbe | None = None
    cache: CommandProbe | None = None
    redis_url: str | None = None  # default: [redis] url; its password is never shown
    redis_command: CommandProbe | None = None  # e.g. "redis-cli ping" on every host

    # P11 backups, P12 web and app servers
    backup_dir: str = ".portal-ops/backups"  # relative to the deploy path
    backup_min_free_mb: float = Field(100.0, ge=0)
    server_commands: list[CommandProbe] = Field(default_factory=list)

    # P13 TLS certificate, Q15 security headers
    tls_target: str | None = None  # "host:port"; default: the public URL if it is https
    tls_server_name: str | None = None  # SNI and the name verified; default: the host
    tls_warn_days: float = Field(30.0, ge=0)
    tls_fail_days: float = Field(14.0, ge=0)
    security_headers: list[str] = Field(
        default_factory=lambda: [
            "Strict-Transport-Security",
            "X-Content-Type-Options",
            "X-Frame-Options|Content-Security-Policy",
        ]
    )

    # P14 external API keys
    api_probes: list[ApiProbe] = Field(default_factory=list)

    # Q03 public health, Q05 latency, Q06 error rate, Q07 smoke pages, Q08 assets
    public_health_path: str | None = None  # default: the path of [portal] health_url
    latency_paths: list[str] = Field(default_factory=lambda: ["/"])
    latency_samples: int = Field(20, ge=1, le=1000)
    latency_warn_ms: float = Field(200.0, gt=0)
    latency_fail_ms: float = Field(500.0, gt=0)
    error_rate_paths: list[str] = Field(default_factory=lambda: ["/"])
    error_rate_samples: int = Field(100, ge=1, le=10000)
    error_rate_concurrency: int = Field(5, ge=1, le=50)
    error_rate_warn_percent: float = Field(0.1, ge=0, le=100)
    error_rate_fail_percent: float = Field(1.0, ge=0, le=100)
    # Q04: a dotted key path into the version endpoint's JSON ("revision", "git.sha",
    # "versions.0.revision"); without it any value of the document may match
    version_key: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    # Q05/Q06 in a deployment: measured the same way before the switch (the baseline), and
    # judged against baseline_factor x it, the absolute lines above being the floor
    relative_to_baseline: bool = True
    baseline_factor: float = Field(2.0, gt=1)
    smoke_pages: list[SmokePage] = Field(default_factory=list)
    asset_manifest: str | None = None  # relative to the release, e.g. public/build/manifest.json
    asset_base: str = "/build/"  # URL path the manifest's files are served under
    asset_limit: int = Field(50, ge=1, le=1000)

    # Q09 migrations (default: [commands] migrate_status or the recipe's), Q11-Q13
    migrate_status: CommandProbe | None = None
    queue_command: CommandProbe | None = None
    scheduler_command: CommandProbe | None = None
    pool_status_url: str | None = None  # php-fpm status (?json); "{address}" filled per host
    pool_command: CommandProbe | None = None

    # Q14 new errors in the app log since the switch
    app_log: str | None = None  # relative to the deploy path; the file name may hold a "*"
    log_error_pattern: str = r"\b(ERROR|CRITICAL|ALERT|EMERGENCY)\b"
    log_timezone: str = "local"  # the zone of the log's timestamps: "local", "UTC", ...
    log_tail_lines: int = Field(5000, ge=10, le=1_000_000)
    log_errors_warn_above: int = Field(0, ge=0)
    log_errors_fail_above: int = Field(0, ge=0)

    @field_validator("weights", "critical", "disabled")
    @classmethod
    def _known_ids(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(k for k in value if k not in CHECK_IDS)
        if unknown:
            raise ValueError(
                f"unknown check id(s) {unknown}: use P01..P15 (pre) or Q01..Q18 (post)"
            )
        return value

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(k for k, w in value.items() if not 0 <= w <= 100)
        if bad:
            raise ValueError(f"weights must be between 0 and 100 (check {', '.join(bad)})")
        return value

    @field_validator("disabled")
    @classmethod
    def _reasons(cls, value: dict[str, str]) -> dict[str, str]:
        missing = sorted(k for k, reason in value.items() if len(reason.strip()) < 3)
        if missing:
            raise ValueError(
                f'a disabled check needs a reason, e.g. {missing[0]} = "no PHPStan in this'
                f' project" (missing for {", ".join(missing)})'
            )
        return value

    @field_validator("log_error_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @field_validator("app_log")
    @classmethod
    def _log_path(cls, value: str | None) -> str | None:
        if value is None:
            return value
        name = value.rstrip("/").rsplit("/", 1)[-1]
        head = value[: len(value) - len(name)]
        if "*" in head or not _LOG_GLOB.match(name):
            raise ValueError(
                "a path whose file name may hold '*' (letters, digits, . _ - *),"
                " e.g. shared/storage/logs/laravel-*.log"
            )
        return value

    @field_validator("tls_target")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            host, sep, port = value.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError('must be "host:port", e.g. "portal.example.com:443"')
        return value

    @field_validator("log_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value != "local":
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError('"local" or a time zone name such as "UTC"') from None
        return value

    @model_validator(mode="after")
    def _bands(self) -> ValidationConfig:
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
        return self
