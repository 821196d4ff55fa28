"""Rules: when a bad window becomes an incident (and, at most once, a rollback).

A rule looks at one metric of one scope (a host or the total) per window and says BAD,
OK or INCONCLUSIVE. INCONCLUSIVE (too few requests, no data, no baseline for a baseline
rule) never passes and never fails: it neither counts toward firing nor resets a streak.
The rule fires when ``for_windows`` of the last ``within`` conclusive windows were BAD and
the latest one was (no flapping: a single spike never fires a rule that needs 2+ windows),
and clears after ``clear_windows`` OK windows in a row.
"""

from __future__ import annotations

import operator
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .config import PROBE_METRICS, MonitorConfig, RuleConfig
from .window import TOTAL, WindowStats

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


class Condition(StrEnum):
    BAD = "bad"
    OK = "ok"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Check:
    """One rule on one window: the outcome and the numbers behind it."""

    condition: Condition
    value: float | None
    baseline: float | None
    why: str = ""


def evaluate(
    rule: RuleConfig, stats: WindowStats, baseline: WindowStats | None, config: MonitorConfig
) -> Check:
    """BAD when every given bound is crossed: the threshold and ``factor x baseline``."""
    metric = rule.metric
    volume = metric in ("rps", "requests")  # for these, little traffic is the signal itself
    if metric in PROBE_METRICS:
        minimum = config.min_probes
    elif rule.min_requests is not None:
        minimum = rule.min_requests
    else:
        minimum = 0 if volume else config.min_requests
    value = stats.value(metric)
    if value is None:
        return Check(Condition.INCONCLUSIVE, None, None, "no data")
    size = stats.sample_size(metric)
    if size < max(minimum, 0 if volume else 1):
        return Check(Condition.INCONCLUSIVE, value, None, f"{size} < {minimum} {_unit(metric)}")
    compare = _OPS[rule.operator]
    base_value: float | None = None
    if rule.baseline_factor is not None:
        if baseline is None or baseline.sample_size(metric) < max(minimum, 1):
            return Check(Condition.INCONCLUSIVE, value, None, "no usable baseline")
        base_value = baseline.value(metric)
        if base_value is None:
            return Check(Condition.INCONCLUSIVE, value, None, "no usable baseline")
        if not compare(value, base_value * rule.baseline_factor):
            return Check(Condition.OK, value, base_value)
    if rule.threshold is not None and not compare(value, rule.threshold):
        return Check(Condition.OK, value, base_value)
    return Check(Condition.BAD, value, base_value)


def _unit(metric: str) -> str:
    return "probes" if metric in PROBE_METRICS else "requests"


@dataclass
class TriggerInfo:
    """What fired: the engine's ``on_trigger`` receives it, the demo shows ``to_dict()``."""

    rule: str
    metric: str
    host: str  # a host name, or "total"
    action: str  # rollback | warn
    op: str
    threshold: float | None
    baseline_factor: float | None
    baseline: float | None
    values: list[float]  # the metric in each bad window that counted, oldest first
    window_start: float  # start of the first counted bad window (epoch seconds)
    window_end: float  # end of the window that fired the rule
    windows: list[dict[str, Any]] = field(default_factory=list)
    deployment_id: str | None = None
    fired_at: float = field(default_factory=time.time)

    @property
    def reason(self) -> str:
        """One sentence for the incident log and the rollback's ``reason``."""
        unit = _display_unit(self.metric)
        shown = ", ".join(_fmt(v, self.metric) for v in self.values)
        bounds = []
        if self.threshold is not None:
            bounds.append(f"{self.op} {_fmt(self.threshold, self.metric)}{unit}")
        if self.baseline_factor is not None and self.baseline is not None:
            bounds.append(
                f"{self.op} {self.baseline_factor:g}x baseline {_fmt(self.baseline, self.metric)}"
                f"{unit}"
            )
        where = "all hosts" if self.host == TOTAL else f"host {self.host}"
        return (
            f"rule {self.rule}: {self.metric} {' and '.join(bounds)} on {where} in"
            f" {len(self.values)} window(s): {shown}{unit}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "metric": self.metric,
            "host": self.host,
            "action": self.action,
            "op": self.op,
            "threshold": self.threshold,
            "baseline_factor": self.baseline_factor,
            "baseline": self.baseline,
            "values": self.values,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "windows": self.windows,
            "deployment_id": self.deployment_id,
            "fired_at": self.fired_at,
            "reason": self.reason,
        }


def _fmt(value: float, metric: str) -> str:
    if metric in ("error_rate", "uptime"):
        return f"{value * 100:.2f}"
    if metric in ("p50", "p95", "p99", "rps"):
        return f"{value:.1f}"
    return f"{value:g}"


def _display_unit(metric: str) -> str:
    return {"error_rate": "%", "uptime": "%", "p50": " ms", "p95": " ms", "p99": " ms"}.get(
        metric, ""
    )


@dataclass
class Transition:
    """A rule that started firing (``fired``) or stopped (``cleared``) on a scope."""

    kind: str  # fired | cleared
    info: TriggerInfo


class RuleState:
    """The memory of one rule on one scope: recent conclusive windows, firing or not."""

    def __init__(self, rule: RuleConfig, needed: int, clear_windows: int) -> None:
        self.rule = rule
        self.needed = needed
        self.history: deque[tuple[Condition, WindowStats, Check]] = deque(
            maxlen=max(rule.within or needed, needed)
        )
        self.clear_windows = clear_windows
        self.firing = False
        self.ok_streak = 0

    def observe(self, stats: WindowStats, check: Check) -> str | None:
        """Feed one window; ``"fired"``, ``"cleared"`` or None."""
        if check.condition is Condition.INCONCLUSIVE:
            return None
        self.history.append((check.condition, stats, check))
        if check.condition is Condition.OK:
            self.ok_streak += 1
            if self.firing and self.ok_streak >= self.clear_windows:
                self.firing = False
                return "cleared"
            return None
        self.ok_streak = 0
        bad = sum(1 for cond, _, _ in self.history if cond is Condition.BAD)
        if not self.firing and bad >= self.needed:
            self.firing = True
            return "fired"
        return None

    def info(self, deployment_id: str | None) -> TriggerInfo:
        rule = self.rule
        bad = [(s, c) for cond, s, c in self.history if cond is Condition.BAD]
        last = self.history[-1][1]
        return TriggerInfo(
            rule=rule.name,
            metric=rule.metric,
            host=last.host,
            action=rule.action,
            op=rule.operator,
            threshold=rule.threshold,
            baseline_factor=rule.baseline_factor,
            baseline=bad[-1][1].baseline if bad else None,
            values=[round(c.value, 6) for _, c in bad if c.value is not None],
            window_start=bad[0][0].start if bad else last.start,
            window_end=last.end,
            windows=[
                {
                    "index": s.index,
                    "start": s.start,
                    "end": s.end,
                    "value": c.value,
                    "requests": s.requests,
                    "probes": s.probes,
                }
                for s, c in bad
            ],
            deployment_id=deployment_id,
        )


class RuleBook:
    """Every rule on every scope; judges a closed window and sets each sample's verdict."""

    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self.rules = config.effective_rules()
        self.states: dict[tuple[str, str], RuleState] = {}

    def _state(self, rule: RuleConfig, host: str) -> RuleState:
        key = (rule.name, host)
        state = self.states.get(key)
        if state is None:
            needed = rule.windows_needed(self.config.window_seconds)
            state = self.states[key] = RuleState(rule, needed, self.config.clear_windows)
        return state

    def judge(
        self,
        samples: list[WindowStats],
        baseline: Mapping[str, WindowStats],
        deployment_id: str | None = None,
    ) -> list[Transition]:
        """Evaluate every rule on every sample of one window; verdicts are set in place."""
        transitions: list[Transition] = []
        for stats in samples:
            worst = ""
            for rule in self.rules:
                if rule.scope == "total" and stats.host != TOTAL:
                    continue
                if rule.scope == "host" and stats.host == TOTAL:
                    continue
                check = evaluate(rule, stats, baseline.get(stats.host), self.config)
                if check.condition is Condition.BAD:
                    stats.bad_rules.append(rule.name)
                    level = "fail" if rule.action == "rollback" else "warn"
                    worst = "fail" if "fail" in (worst, level) else level
                state = self._state(rule, stats.host)
                change = state.observe(stats, check)
                if change is not None:
                    transitions.append(Transition(change, state.info(deployment_id)))
            stats.verdict = worst or self.plain_verdict(stats)
        return transitions

    def plain_verdict(self, stats: WindowStats) -> str:
        """Without a bad rule: inconclusive below the minimum, warn above the targets."""
        c = self.config
        if stats.requests < max(c.min_requests, 1):
            if stats.uptime is not None and stats.uptime < c.uptime_target:
                return "warn"
            return "inconclusive"
        over_latency = stats.p95 is not None and stats.p95 > c.response_time_target_ms
        over_errors = stats.error_rate is not None and stats.error_rate > c.error_rate_target
        low_uptime = stats.uptime is not None and stats.uptime < c.uptime_target
        return "warn" if over_latency or over_errors or low_uptime else "pass"

    def firing(self) -> list[tuple[str, str]]:
        return [key for key, state in self.states.items() if state.firing]
