"""What a check is, what it reports, and how results become a score and a decision.

A check (``P01``..``P15`` before, ``Q01``..``Q18`` after the switch) yields one row per
host it concerns, or one row for the portal as a whole. Scoring works per check: its
status is the worst of its rows (``every host`` means every host), so a check weighs the
same whether the portal has one host or twenty.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .context import Context

Phase = Literal["pre", "post"]


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"  # could not be measured: scored as a failure, never a silent pass
    SKIPPED = "skipped"  # not applicable or disabled, with the reason; not scored


# worst first: the status a check takes from its rows
_SEVERITY = {Status.ERROR: 4, Status.FAIL: 3, Status.WARN: 2, Status.PASS: 1, Status.SKIPPED: 0}
_EARNED = {Status.PASS: 1.0, Status.WARN: 0.5, Status.FAIL: 0.0, Status.ERROR: 0.0}


@dataclass
class Outcome:
    """What a check function measured for one host (or the portal: ``host`` None)."""

    status: Status
    message: str
    host: str | None = None
    value: Any = None
    unit: str = ""
    threshold: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    duration_ms: float | None = None


def passed(message: str, **kw: Any) -> Outcome:
    return Outcome(Status.PASS, message, **kw)


def warned(message: str, **kw: Any) -> Outcome:
    return Outcome(Status.WARN, message, **kw)


def failed(message: str, **kw: Any) -> Outcome:
    return Outcome(Status.FAIL, message, **kw)


def errored(message: str, **kw: Any) -> Outcome:
    return Outcome(Status.ERROR, message, **kw)


def skipped(message: str, **kw: Any) -> Outcome:
    return Outcome(Status.SKIPPED, message, **kw)


def answered(make: Callable[..., Outcome], url: str, code: int, threshold: str) -> Outcome:
    """``<url> answered <code>`` as ``make`` (passed, failed, ...) says, the status the value."""
    return make(f"{url} answered {code}", value=code, unit="HTTP", threshold=threshold)


def banded(value: float, warn: float, fail: float, *, higher_is_worse: bool = True) -> Status:
    """pass / warn / fail for a measured value against a warn and a fail threshold."""
    if higher_is_worse:
        return Status.FAIL if value > fail else Status.WARN if value > warn else Status.PASS
    return Status.FAIL if value < fail else Status.WARN if value < warn else Status.PASS


CheckFunc = Callable[["Context"], Awaitable[list[Outcome]]]


@dataclass(frozen=True)
class CheckSpec:
    id: str
    title: str
    category: str
    phase: Phase
    weight: float
    critical: bool
    scope: Literal["host", "global"]
    func: CheckFunc


REGISTRY: dict[str, CheckSpec] = {}


def check(
    id: str,
    title: str,
    category: str,
    *,
    weight: float,
    critical: bool = False,
    scope: Literal["host", "global"] = "global",
) -> Callable[[CheckFunc], CheckFunc]:
    """Register a check function under its id; the phase follows from the id's letter."""

    def register(func: CheckFunc) -> CheckFunc:
        phase: Phase = "pre" if id.startswith("P") else "post"
        REGISTRY[id] = CheckSpec(id, title, category, phase, weight, critical, scope, func)
        return func

    return register


@dataclass
class CheckResult:
    """One row of a report: a check's outcome on one host (or for the portal)."""

    id: str
    title: str
    category: str
    host: str | None
    status: Status
    message: str
    value: Any = None
    unit: str = ""
    threshold: str = ""
    weight: float = 0.0
    critical: bool = False
    duration_ms: float = 0.0
    disabled: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "category": self.category,
            "host": self.host,
            "value": self.value,
            "unit": self.unit,
            "threshold": self.threshold,
            "status": str(self.status),
            "weight": self.weight,
            "critical": self.critical,
            "duration_ms": round(self.duration_ms, 1),
            "message": self.message,
            "disabled": self.disabled,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CheckResult:
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        known["status"] = Status(known["status"])
        return cls(**known)


def worst(statuses: Iterable[Status]) -> Status:
    """The worst of some statuses (error > fail > warn > pass > skipped)."""
    result = Status.SKIPPED
    for status in statuses:
        if _SEVERITY[status] > _SEVERITY[result]:
            result = status
    return result


def check_status(rows: Iterable[CheckResult]) -> Status:
    """The worst status among a check's rows; skipped only when every row is skipped."""
    return worst(row.status for row in rows)


def by_check(rows: Iterable[CheckResult]) -> dict[str, list[CheckResult]]:
    grouped: dict[str, list[CheckResult]] = {}
    for row in rows:
        grouped.setdefault(row.id, []).append(row)
    return grouped


def score(rows: Iterable[CheckResult]) -> float:
    """Weighted score 0..100: pass earns the weight, warn half, fail and error nothing;
    skipped and disabled checks leave the denominator. Nothing scorable scores 0."""
    earned = possible = 0.0
    for check_rows in by_check(rows).values():
        status = check_status(check_rows)
        if status is Status.SKIPPED:
            continue
        weight = check_rows[0].weight
        possible += weight
        earned += weight * _EARNED[status]
    return round(100.0 * earned / possible, 1) if possible else 0.0


def decide(rows: list[CheckResult], pass_score: float) -> tuple[float, str, list[str]]:
    """(score, "go" | "no-go", reasons). A failed or errored critical check is no-go
    whatever the score; otherwise go at or above ``pass_score``."""
    total = score(rows)
    grouped = by_check(rows)
    vetoes: list[str] = []
    others: list[str] = []
    warnings: list[str] = []
    for check_id, check_rows in grouped.items():
        status = check_status(check_rows)
        bad = [r for r in check_rows if r.status in (Status.FAIL, Status.ERROR)]
        if status in (Status.FAIL, Status.ERROR):
            line = "; ".join(_describe(r) for r in bad)
            if check_rows[0].critical:
                vetoes.append(f"critical check {check_id} {check_rows[0].title} {status}: {line}")
            else:
                others.append(f"{check_id} {check_rows[0].title} {status}: {line}")
        elif status is Status.WARN:
            warned_rows = [r for r in check_rows if r.status is Status.WARN]
            line = "; ".join(_describe(r) for r in warned_rows)
            warnings.append(f"{check_id} {check_rows[0].title} warn: {line}")
    scored = any(check_status(r) is not Status.SKIPPED for r in grouped.values())
    reasons = list(vetoes)
    if not scored:
        reasons.append("no check could be scored (all skipped or disabled)")
    elif total < pass_score:
        reasons.append(f"score {total:g} is below the pass score {pass_score:g}")
    go = not vetoes and scored and total >= pass_score
    if go:
        reasons.append(f"score {total:g} >= pass score {pass_score:g} and no critical check failed")
    reasons += others + warnings
    return total, "go" if go else "no-go", reasons


def _describe(row: CheckResult) -> str:
    return f"{row.host}: {row.message}" if row.host else row.message
