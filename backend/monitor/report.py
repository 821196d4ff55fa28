"""The monitoring report: after the switch versus the baseline before it, with trends.

Written as JSON (for tools and the demo summary) and Markdown (for people) into the
state directory at the end of a run, or on Ctrl-C. Trends have a direction (up, down,
flat within 5%) and an assessment (better, worse, same) that knows that lower is better
for latency and errors and higher for throughput and uptime.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..redact import redact
from .config import MonitorConfig
from .window import TOTAL, WindowStats

METRICS = ("p50", "p95", "p99", "error_rate", "rps", "uptime")
LOWER_IS_BETTER = {"p50", "p95", "p99", "error_rate"}
FLAT_PCT = 5.0


def trend(metric: str, before: float | None, after: float | None) -> dict[str, Any]:
    """Direction and change % of one metric from ``before`` to ``after``."""
    out: dict[str, Any] = {"before": before, "after": after, "change_pct": None}
    if before is None or after is None:
        out.update(direction="unknown", assessment="unknown")
        return out
    if before == 0:
        change = 0.0 if after == 0 else float("inf")
    else:
        change = (after - before) / abs(before) * 100.0
    if abs(change) < FLAT_PCT or (before == after):
        direction = "flat"
    else:
        direction = "up" if after > before else "down"
    if direction == "flat":
        assessment = "same"
    elif (direction == "up") == (metric in LOWER_IS_BETTER):
        assessment = "worse"
    else:
        assessment = "better"
    out.update(
        change_pct=None if change == float("inf") else round(change, 1),
        direction=direction,
        assessment=assessment,
    )
    return out


def slope_trend(metric: str, windows: Sequence[WindowStats]) -> dict[str, Any]:
    """How a metric moved during the run: least-squares slope per minute, first vs last third."""
    points = [(w.end, v) for w in windows if (v := w.value(metric)) is not None]
    if len(points) < 3:
        return {"points": len(points), "per_minute": None, "direction": "unknown"}
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    sxx = sum((t - mx) ** 2 for t, _ in points)
    slope = sum((t - mx) * (v - my) for t, v in points) / sxx if sxx else 0.0
    third = max(1, n // 3)
    first = sum(v for _, v in points[:third]) / third
    last = sum(v for _, v in points[-third:]) / third
    moved = trend(metric, first, last)
    return {
        "points": n,
        "per_minute": round(slope * 60.0, 6),
        "first_third": first,
        "last_third": last,
        "direction": moved["direction"],
        "assessment": moved["assessment"],
    }


def target_status(metric: str, value: float | None, config: MonitorConfig) -> dict[str, Any]:
    """The strategy's targets: ``target`` met, only ``acceptable``, or ``missed``."""
    bounds = {
        "p95": (config.response_time_target_ms, config.response_time_acceptable_ms, True),
        "error_rate": (config.error_rate_target, config.error_rate_acceptable, True),
        "uptime": (config.uptime_target, config.uptime_acceptable, False),
    }
    target, acceptable, lower = bounds[metric]
    if value is None:
        status = "unknown"
    elif (value <= target) if lower else (value >= target):
        status = "target"
    elif (value <= acceptable) if lower else (value >= acceptable):
        status = "acceptable"
    else:
        status = "missed"
    return {"value": value, "target": target, "acceptable": acceptable, "status": status}


def _summary(stats: WindowStats) -> dict[str, Any]:
    return {
        "requests": stats.requests,
        "errors": stats.errors,
        "client_errors": stats.client_errors,
        "rps": stats.rps,
        "error_rate": stats.error_rate,
        "p50": stats.p50,
        "p95": stats.p95,
        "p99": stats.p99,
        "probes": stats.probes,
        "uptime": stats.uptime,
        "seconds": round(stats.seconds, 3),
    }


@dataclass
class MonitorReport:
    deployment_id: str
    run_id: str
    started_at: float
    ended_at: float
    window_seconds: float
    windows: int
    verdict: str  # pass | warn | fail | inconclusive
    stopped_by: str  # duration | stop | interrupted | trigger
    auto_rollback: bool
    source: str
    after: dict[str, dict[str, Any]]
    baseline: dict[str, dict[str, Any]] | None
    trends: dict[str, dict[str, Any]]
    during: dict[str, dict[str, Any]]
    targets: dict[str, dict[str, Any]]
    verdict_counts: dict[str, int]
    incidents: list[dict[str, Any]]
    trigger: dict[str, Any] | None
    rollback: dict[str, Any] | None
    paths: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        *,
        config: MonitorConfig,
        deployment_id: str,
        run_id: str,
        started_at: float,
        ended_at: float,
        windows: Sequence[WindowStats],
        after: Mapping[str, WindowStats],
        baseline: Mapping[str, WindowStats],
        stopped_by: str,
        auto_rollback: bool,
        source: str,
        incidents: list[dict[str, Any]],
        trigger: dict[str, Any] | None,
        rollback: dict[str, Any] | None,
    ) -> MonitorReport:
        totals = [w for w in windows if w.host == TOTAL]
        counts: dict[str, int] = {}
        for w in totals:
            counts[w.verdict] = counts.get(w.verdict, 0) + 1
        trends: dict[str, dict[str, Any]] = {}
        for host, stats in after.items():
            base = baseline.get(host)
            if base is not None:
                trends[host] = {m: trend(m, base.value(m), stats.value(m)) for m in METRICS}
        total = after.get(TOTAL)
        conclusive = [w for w in totals if w.verdict != "inconclusive"]
        if trigger is not None or counts.get("fail"):
            verdict = "fail"
        elif counts.get("warn"):
            verdict = "warn"
        elif conclusive:
            verdict = "pass"
        else:
            verdict = "inconclusive"
        return cls(
            deployment_id=deployment_id,
            run_id=run_id,
            started_at=started_at,
            ended_at=ended_at,
            window_seconds=config.window_seconds,
            windows=len(totals),
            verdict=verdict,
            stopped_by=stopped_by,
            auto_rollback=auto_rollback,
            source=source,
            after={h: _summary(s) for h, s in after.items()},
            baseline={h: _summary(s) for h, s in baseline.items()} or None,
            trends=trends,
            during={m: slope_trend(m, conclusive) for m in ("p95", "error_rate", "rps")},
            targets={
                m: target_status(m, total.value(m) if total else None, config)
                for m in ("p95", "error_rate", "uptime")
            },
            verdict_counts=counts,
            incidents=incidents,
            trigger=trigger,
            rollback=rollback,
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "paths"}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str, allow_nan=False)

    def to_markdown(self) -> str:
        lines = [
            f"# Monitoring report: {self.deployment_id}",
            "",
            f"- Verdict: **{self.verdict.upper()}** ({_counts(self.verdict_counts)})",
            f"- Watched: {_when(self.started_at)} to {_when(self.ended_at)}"
            f" ({self.ended_at - self.started_at:.0f} s, {self.windows} windows of"
            f" {self.window_seconds:g} s, traffic from {self.source or 'nothing'})",
            f"- Ended by: {self.stopped_by}; auto-rollback {'on' if self.auto_rollback else 'off'}",
        ]
        if self.trigger:
            lines.append(f"- Trigger: {self.trigger['reason']}")
        if self.rollback:
            lines.append(f"- Rollback: {_kv(self.rollback)}")
        lines += ["", "## Targets (all hosts, whole run)", "", "| Metric | Value | Target |"
                  " Acceptable | Status |", "|---|---|---|---|---|"]  # fmt: skip
        for metric, t in self.targets.items():
            lines.append(
                f"| {metric} | {_num(metric, t['value'])} | {_num(metric, t['target'])} |"
                f" {_num(metric, t['acceptable'])} | {t['status']} |"
            )
        lines += ["", "## After the switch versus the baseline", ""]
        if not self.baseline:
            lines += ["No baseline was recorded before the switch: no comparison.", ""]
        hosts = [TOTAL, *sorted(h for h in self.after if h != TOTAL)]
        for host in hosts:
            after = self.after.get(host)
            if after is None:
                continue
            lines += [f"### {host}", "", "| Metric | Baseline | After | Change | Trend |",
                      "|---|---|---|---|---|"]  # fmt: skip
            base = (self.baseline or {}).get(host, {})
            moves = self.trends.get(host, {})
            for metric in (*METRICS, "requests"):
                move = moves.get(metric, {})
                change = move.get("change_pct")
                lines.append(
                    f"| {metric} | {_num(metric, base.get(metric))} |"
                    f" {_num(metric, after.get(metric))} |"
                    f" {'' if change is None else f'{change:+.1f}%'} |"
                    f" {move.get('direction', '')} {move.get('assessment', '')} |"
                )
            lines.append("")
        lines += ["## During the run", "", "| Metric | First third | Last third | Per minute |"
                  " Trend |", "|---|---|---|---|---|"]  # fmt: skip
        for metric, d in self.during.items():
            lines.append(
                f"| {metric} | {_num(metric, d.get('first_third'))} |"
                f" {_num(metric, d.get('last_third'))} | {_num(metric, d.get('per_minute'))} |"
                f" {d.get('direction', '')} {d.get('assessment', '')} |"
            )
        lines += ["", "## Incidents", ""]
        if not self.incidents:
            lines.append("None.")
        for incident in self.incidents:
            lines.append(
                f"- {_when(incident.get('ts', 0))} **{incident.get('severity')}**"
                f" {incident.get('message')}"
            )
        return "\n".join(lines) + "\n"

    def write(self, directory: str | Path) -> list[Path]:
        """``monitor-<deployment>-<time>.json`` and ``.md`` in ``directory``."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.started_at))
        return self.write_file(Path(directory) / f"monitor-{self.deployment_id}-{stamp}.json")

    def write_file(self, path: str | Path) -> list[Path]:
        """``path`` and its twin: a ``.md`` path gets Markdown and a ``.json`` beside it;
        any other path gets JSON and a ``.md`` beside it."""
        path = Path(path)
        twin = path.with_suffix(".json" if path.suffix == ".md" else ".md")
        path.parent.mkdir(parents=True, exist_ok=True)
        text_json, text_md = self.to_json(), self.to_markdown()
        for target in (path, twin):
            target.write_text(redact(text_md if target.suffix == ".md" else text_json))
        self.paths += [str(path), str(twin)]
        return [path, twin]


def _counts(counts: Mapping[str, int]) -> str:
    order = ("pass", "warn", "fail", "inconclusive")
    return ", ".join(f"{counts.get(k, 0)} {k}" for k in order)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _num(metric: str, value: Any) -> str:
    if value is None:
        return "-"
    if metric in ("error_rate", "uptime"):
        return f"{value * 100:.3f}%"
    if metric in ("p50", "p95", "p99"):
        return f"{value:.1f} ms"
    if metric == "rps":
        return f"{value:.2f}/s"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _kv(data: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in data.items())
