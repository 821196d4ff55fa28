"""The validation report: our schema plus a spatie/laravel-health-compatible view, stored
with the deployment in the state directory (``validation/<deployment>.<phase>.json``).

Schema (version 1) is documented in docs/validation.md. ``finishedAt`` and
``checkResults`` sit at the top level in spatie's stored-results shape, so tools that read
``laravel-health`` JSON read these reports as they are.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..paths import state_dir
from ..redact import redact
from .model import CheckResult, Phase, Status, by_check, check_status

SCHEMA = "portal-ops/validation-report/1"

SPATIE_STATUS = {
    Status.PASS: "ok",
    Status.WARN: "warning",
    Status.FAIL: "failed",
    Status.ERROR: "crashed",
    Status.SKIPPED: "skipped",
}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _from_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class ValidationReport:
    phase: Phase
    deployment_id: str | None
    started_at: float
    finished_at: float
    score: float
    decision: str  # "go" | "no-go"
    reasons: list[str]
    checks: list[CheckResult]
    pass_score: float = 90.0
    portal: str = ""
    release: str | None = None
    revision: str | None = None
    hosts: list[str] = field(default_factory=list)
    path: Path | None = None  # where it was stored, once stored

    @property
    def go(self) -> bool:
        return self.decision == "go"

    def counts(self) -> dict[str, int]:
        """Rows by status (every status present, zeros included)."""
        counts = {str(s): 0 for s in Status}
        for row in self.checks:
            counts[str(row.status)] += 1
        return counts

    def check_statuses(self) -> dict[str, str]:
        """Each check's own status (the worst of its rows), by id."""
        return {cid: str(check_status(rows)) for cid, rows in by_check(self.checks).items()}

    def disabled(self) -> list[dict[str, str]]:
        return [
            {"id": r.id, "reason": r.message.removeprefix("disabled: ")}
            for r in self.checks
            if r.disabled
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "deployment_id": self.deployment_id,
            "phase": self.phase,
            "portal": self.portal,
            "release": self.release,
            "revision": self.revision,
            "hosts": self.hosts,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_ms": round((self.finished_at - self.started_at) * 1000, 1),
            "score": self.score,
            "pass_score": self.pass_score,
            "decision": self.decision,
            "reasons": self.reasons,
            "counts": self.counts(),
            "disabled": self.disabled(),
            "checks": [row.to_dict() for row in self.checks],
            "finishedAt": int(self.finished_at),
            "checkResults": [spatie_result(row) for row in self.checks],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ValidationReport:
        return cls(
            phase=raw["phase"],
            deployment_id=raw.get("deployment_id"),
            started_at=_from_iso(raw["started_at"]),
            finished_at=_from_iso(raw["finished_at"]),
            score=float(raw["score"]),
            decision=raw["decision"],
            reasons=list(raw.get("reasons", [])),
            checks=[CheckResult.from_dict(c) for c in raw.get("checks", [])],
            pass_score=float(raw.get("pass_score", 90.0)),
            portal=raw.get("portal", ""),
            release=raw.get("release"),
            revision=raw.get("revision"),
            hosts=list(raw.get("hosts", [])),
        )

    def summary_data(self) -> dict[str, Any]:
        """What the CHECK_SUMMARY event carries."""
        return {
            "phase": self.phase,
            "score": self.score,
            "pass_score": self.pass_score,
            "decision": self.decision,
            "go": self.go,
            "reasons": self.reasons,
            "counts": self.counts(),
            "checks": self.check_statuses(),
            "report": str(self.path) if self.path else None,
        }


def spatie_result(row: CheckResult) -> dict[str, Any]:
    """One row as a laravel-health ``StoredCheckResult``."""
    value = "" if row.value is None else f"{row.value}{(' ' + row.unit) if row.unit else ''}"
    return {
        "name": row.id if row.host is None else f"{row.id}.{row.host}",
        "label": row.title if row.host is None else f"{row.title} ({row.host})",
        "notificationMessage": "" if row.status is Status.PASS else row.message,
        "shortSummary": value or SPATIE_STATUS[row.status],
        "status": SPATIE_STATUS[row.status],
        "meta": {
            "id": row.id,
            "host": row.host,
            "category": row.category,
            "value": row.value,
            "unit": row.unit,
            "threshold": row.threshold,
            "weight": row.weight,
            "critical": row.critical,
            "duration_ms": round(row.duration_ms, 1),
            **row.meta,
        },
    }


def reports_dir(state: str | os.PathLike[str] | None = None) -> Path:
    path = state_dir(state) / "validation"
    path.mkdir(parents=True, exist_ok=True)
    return path


def report_name(deployment_id: str | None, phase: str, started_at: float) -> str:
    if deployment_id:
        return f"{deployment_id}.{phase}.json"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started_at))
    return f"adhoc-{stamp}-{os.getpid()}.{phase}.json"


def store(report: ValidationReport, state: str | os.PathLike[str] | None = None) -> Path:
    """Write the report beside the journal; atomic (write, then rename)."""
    directory = reports_dir(state)
    path = directory / report_name(report.deployment_id, report.phase, report.started_at)
    tmp = path.with_suffix(".tmp")
    report.path = path
    tmp.write_text(redact(report.to_json()))
    tmp.replace(path)
    return path


def load(
    deployment_id: str, phase: Phase, state: str | os.PathLike[str] | None = None
) -> ValidationReport | None:
    """The stored report of a deployment's phase, or None when there is none."""
    path = reports_dir(state) / f"{deployment_id}.{phase}.json"
    if not path.exists():
        return None
    report = ValidationReport.from_dict(json.loads(path.read_text()))
    report.path = path
    return report


def write(report: ValidationReport, target: str | os.PathLike[str]) -> None:
    """Write the JSON report where ``--json`` says (``-`` is handled by the caller)."""
    Path(target).write_text(redact(report.to_json()) + "\n")
