"""Configuration of monitoring (``[monitor]`` in portal-ops.toml).

Defaults come from the strategy's performance targets (response time 200 ms target /
500 ms acceptable, error rate 0.1% / 1%, uptime 99.9% / 99.5%) and from the reference's
proposal (tumbling windows, a minimum request count below which a window is
INCONCLUSIVE, rules that must hold for several windows before they fire).
"""

from __future__ import annotations

import math
import re
from dataclasses import field
from typing import Annotated, Literal

from ..durations import Duration
from ..schema import Check, Length, Limits, Section, section

Metric = Literal[
    "p50", "p95", "p99", "error_rate", "rps", "requests", "uptime", "probe_failures"
]  # fmt: skip
Op = Literal[">", ">=", "<", "<="]
Action = Literal["rollback", "warn"]
Scope = Literal["any", "total", "host"]

# Built-in access-log formats. The default is nginx "combined" with $request_time appended:
#   log_format timed '$remote_addr - $remote_user [$time_local] "$request" $status '
#                    '$body_bytes_sent "$http_referer" "$http_user_agent" $request_time';
COMBINED_TIMED = "combined+request_time"
COMBINED = "combined"
BUILTIN_FORMATS = (COMBINED_TIMED, COMBINED)
LATENCY_GROUPS = ("request_time", "request_time_ms", "request_time_us")

# Metrics whose sample size is the number of probes rather than the number of requests.
PROBE_METRICS = ("uptime", "probe_failures")


@section
class ProbesConfig(Section):
    """Synthetic probes: httpx requests to URLs at an interval (uptime, probe failures)."""

    enabled: bool = True  # only runs when there is a URL (urls, or the portal's health_url)
    urls: list[str] = field(default_factory=list)  # "{address}"/"{name}": one probe per host
    use_health_url: bool = True  # with no urls: probe [portal] health_url on every host
    interval_seconds: Annotated[Duration, Limits(gt=0)] = 5.0
    timeout_seconds: Annotated[Duration, Limits(gt=0)] = 3.0
    ok_status_max: Annotated[int, Limits(ge=100, le=599)] = (
        399  # a probe passes with a status <= this
    )
    verify_tls: bool = True


@section
class PrometheusConfig(Section):
    """The app's /metrics: counter and histogram deltas between scrapes."""

    enabled: bool = False
    urls: list[str] = field(default_factory=list)  # "{address}"/"{name}": one per host
    interval_seconds: Annotated[Duration, Limits(gt=0)] = 5.0
    timeout_seconds: Annotated[Duration, Limits(gt=0)] = 3.0
    requests_metric: str = "http_requests_total"  # counter with a status label
    status_label: str = "status"  # "code" for some exporters; values 200, 503 or 5xx
    latency_metric: str = "http_request_duration_seconds"  # histogram, in seconds
    match: dict[str, str] = field(default_factory=dict)  # only series with these labels
    verify_tls: bool = True

    def _consistent(self) -> None:
        if self.enabled and not self.urls:
            raise ValueError('enabled = true needs urls, e.g. ["http://{address}:9100/metrics"]')


@section
class HAProxyStatsConfig(Section):
    """HAProxy's per-server stats (``show stat``): real user traffic per host."""

    enabled: bool = False
    socket: str | None = None  # default: [load_balancer] socket
    backend: str | None = None  # default: [load_balancer] backend
    interval_seconds: Annotated[Duration, Limits(gt=0)] = 1.0


def _format(value: str) -> str:
    if value in BUILTIN_FORMATS:
        return value
    if "$status" not in value:
        raise ValueError(
            f"must be one of {', '.join(BUILTIN_FORMATS)} or an nginx log_format spec"
            " containing $status (and $request_time for latency)"
        )
    return value


def _status_regex(value: str) -> str:
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    if "status" not in compiled.groupindex:
        raise ValueError("needs a named group (?P<status>...)")
    return value


@section
class AccessLogConfig(Section):
    """The web server's access log, followed with ``tail -F`` over the transport."""

    enabled: bool = False
    path: str = "/var/log/nginx/access.log"  # "{name}" is filled in per host
    # a built-in name or an nginx log_format spec with $vars
    format: Annotated[str, Check(_format)] = COMBINED_TIMED
    # instead of format: named groups status and request_time[_ms|_us]
    regex: Annotated[str, Check(_status_regex)] | None = None
    roles: list[str] = field(default_factory=lambda: ["web"])  # hosts whose log is followed


@section
class RuleConfig(Section):
    """One rule: ``metric op threshold`` (and/or ``> baseline_factor x baseline``).

    Bad windows are counted among *conclusive* windows only: the rule fires when
    ``for_windows`` of the last ``within`` conclusive windows were bad and the latest was.
    """

    name: Annotated[str, Length(min=1, max=64)]
    metric: Metric
    op: Op | None = None  # default: ">" ("<" for uptime and rps)
    threshold: float | None = None  # ms for p50/p95/p99, a fraction for error_rate/uptime
    baseline_factor: Annotated[float, Limits(gt=0)] | None = (
        None  # e.g. 2.0: and above 2x the baseline
    )
    for_windows: Annotated[int, Limits(ge=1, le=1000)] | None = None
    for_seconds: Annotated[float, Limits(gt=0)] | None = (
        None  # or a duration, rounded up to windows
    )
    within: Annotated[int, Limits(ge=1, le=1000)] | None = None  # N of the last M (default M = N)
    min_requests: Annotated[int, Limits(ge=0)] | None = None  # default: [monitor] min_requests
    scope: Scope = "any"  # the total, every host, or both
    action: Action = "rollback"

    def _consistent(self) -> None:
        if self.threshold is None and self.baseline_factor is None:
            raise ValueError("a rule needs a threshold, a baseline_factor, or both")
        if self.for_windows is not None and self.for_seconds is not None:
            raise ValueError("give for_windows or for_seconds, not both")
        if self.within is not None and self.within < (self.for_windows or 1):
            raise ValueError("within must be at least for_windows")

    @property
    def operator(self) -> Op:
        return self.op or ("<" if self.metric in ("uptime", "rps") else ">")

    def windows_needed(self, window_seconds: float) -> int:
        """How many bad windows fire the rule: for_windows, or for_seconds in windows."""
        if self.for_windows is not None:
            return self.for_windows
        if self.for_seconds is not None:
            return max(1, math.ceil(self.for_seconds / window_seconds - 1e-9))
        return 1


@section
class MonitorConfig(Section):
    window_seconds: Annotated[Duration, Limits(gt=0)] = 30.0
    auto_rollback: bool = True  # for the engine's phase-9 monitoring; the CLI asks explicitly
    bake_seconds: Annotated[Duration, Limits(ge=0)] = (
        0.0  # phase 9's monitoring window; 0: none (>= 600 ok)
    )
    duration_seconds: Annotated[Duration, Limits(gt=0)] = (
        900.0  # `portal-ops monitor` without --duration
    )
    baseline_seconds: Annotated[Duration, Limits(ge=0)] = (
        60.0  # recorded before the switch; 0: none
    )
    min_requests: Annotated[int, Limits(ge=0)] = (
        50  # fewer in a window: INCONCLUSIVE, never pass/fail
    )
    min_probes: Annotated[int, Limits(ge=0)] = (
        1  # the same for probe metrics (uptime, probe_failures)
    )
    clear_windows: Annotated[int, Limits(ge=1)] = (
        2  # good windows in a row before a firing rule clears
    )
    inconclusive_alert_windows: Annotated[int, Limits(ge=0)] = (
        4  # warn a human after this many; 0: never
    )
    traffic_source: Literal["auto", "haproxy", "access_log", "prometheus", "probes"] = "auto"

    response_time_target_ms: Annotated[float, Limits(gt=0)] = 200.0
    response_time_acceptable_ms: Annotated[float, Limits(gt=0)] = 500.0
    error_rate_target: Annotated[float, Limits(ge=0, le=1)] = 0.001
    error_rate_acceptable: Annotated[float, Limits(ge=0, le=1)] = 0.01
    uptime_target: Annotated[float, Limits(ge=0, le=1)] = 0.999
    uptime_acceptable: Annotated[float, Limits(ge=0, le=1)] = 0.995

    default_rules: bool = True  # the built-in rules below, unless a rule of the same name
    rules: list[RuleConfig] = field(default_factory=list)

    probes: ProbesConfig = field(default_factory=ProbesConfig)
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)
    access_log: AccessLogConfig = field(default_factory=AccessLogConfig)
    haproxy: HAProxyStatsConfig = field(default_factory=HAProxyStatsConfig)

    def _consistent(self) -> None:
        if self.response_time_acceptable_ms < self.response_time_target_ms:
            raise ValueError("response_time_acceptable_ms must be >= response_time_target_ms")
        if self.error_rate_acceptable < self.error_rate_target:
            raise ValueError("error_rate_acceptable must be >= error_rate_target")
        if self.uptime_acceptable > self.uptime_target:
            raise ValueError("uptime_acceptable must be <= uptime_target")
        if self.prometheus.enabled and self.prometheus.interval_seconds > self.window_seconds:
            raise ValueError(
                "prometheus.interval_seconds must not exceed window_seconds: every window"
                " needs at least one scrape"
            )
        chosen = {
            "haproxy": self.haproxy.enabled,
            "access_log": self.access_log.enabled,
            "prometheus": self.prometheus.enabled,
            "probes": self.probes.enabled,
        }
        if self.traffic_source != "auto" and not chosen[self.traffic_source]:
            raise ValueError(
                f'traffic_source = "{self.traffic_source}" but [monitor.{self.traffic_source}]'
                " is not enabled"
            )
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(dupes)}")

    def effective_rules(self) -> list[RuleConfig]:
        """The configured rules plus the built-in ones they do not replace (by name)."""
        rules = list(self.rules)
        if self.default_rules:
            taken = {r.name for r in rules}
            rules += [r for r in self.builtin_rules() if r.name not in taken]
        return rules

    def builtin_rules(self) -> list[RuleConfig]:
        """The reference's triggers, with the strategy's thresholds.

        5xx above the acceptable rate for 3 windows; p95 above acceptable in 4 of 5 windows;
        3 failed probes in a row; and, as warnings only, p95 or errors at more than twice the
        pre-switch baseline while also above the target.
        """
        return [
            RuleConfig(
                name="error-rate", metric="error_rate",
                threshold=self.error_rate_acceptable, for_windows=3,
            ),
            RuleConfig(
                name="latency-p95", metric="p95",
                threshold=self.response_time_acceptable_ms, for_windows=4, within=5,
            ),
            RuleConfig(name="probe-down", metric="probe_failures", op=">=", threshold=3),
            RuleConfig(
                name="latency-regression", metric="p95", threshold=self.response_time_target_ms,
                baseline_factor=2.0, for_windows=3, action="warn",
            ),
            RuleConfig(
                name="error-regression", metric="error_rate", threshold=self.error_rate_target,
                baseline_factor=2.0, for_windows=3, action="warn",
            ),
        ]  # fmt: skip
