"""The control room's view model: what the panes draw, as immutable values.

Everything is frozen (dataclasses, tuples), so a snapshot can travel in a message, a
newer one can replace an older one unseen, and a widget can tell what changed by identity
(``old.phases is new.phases``). Built by the reducer (``tui.state``); no Textual here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.phases import DEPLOY_PHASES, ROLLBACK_PHASES

MAX_SAMPLES = 600  # ten minutes of 1 s samples: more than any graph is wide

# Log severities, in order; the label is what makes a line readable without colour.
SEVERITIES: tuple[str, ...] = ("debug", "info", "ok", "warning", "error", "critical")
SEVERITY_RANK: dict[str, int] = {
    "debug": 0,
    "info": 1,
    "ok": 1,
    "warning": 2,
    "error": 3,
    "critical": 4,
}
SEVERITY_LABEL: dict[str, str] = {
    "debug": "out",
    "info": "INFO",
    "ok": "OK",
    "warning": "WARN",
    "error": "ERROR",
    "critical": "CRIT",
}

_DONE = {"ok", "done", "succeeded", "success", "passed", "pass", "completed", "go"}
_FAILED = {"failed", "fail", "error", "errored", "aborted", "no-go", "nogo"}
_WARN = {"warning", "warn", "degraded", "partial"}
_SKIPPED = {"skipped", "skip", "not-needed", "n/a"}
_CANCELLED = {"interrupted", "cancelled", "canceled"}
GLOBAL_FLAG = "*"  # the flag name of changes to every flag at once (kill switch, restore)


# -- the view model -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checks:
    """Counts of check results in one validation phase, and the verdict once summarised."""

    passed: int = 0
    warned: int = 0
    failed: int = 0
    skipped: int = 0
    score: float | None = None
    decision: str = ""

    @property
    def total(self) -> int:
        return self.passed + self.warned + self.failed + self.skipped


@dataclass(frozen=True, slots=True)
class PhaseView:
    name: str
    title: str
    number: int
    status: str = "pending"  # pending|running|done|warning|failed|skipped|cancelled|paused
    started_at: float | None = None
    seconds: float | None = None
    detail: str = ""
    checks: Checks | None = None


@dataclass(frozen=True, slots=True)
class HostView:
    name: str
    state: str = "pending"
    release: str = ""
    step: str = ""  # the step running or last run on this host
    step_failed: bool = False
    p95: float | None = None
    error_rate: float | None = None
    sampled_at: float | None = None  # when p95/error_rate were measured (None: not since
    # this host's release changed: the figures of a previous release are never shown)


@dataclass(frozen=True, slots=True)
class FlagView:
    name: str
    enabled: bool = False
    percentage: int = 100
    overrides: int = 0
    evaluations: int | None = None
    description: str = ""
    changed_by: str = ""
    reason: str = ""
    change: str = ""
    changed_at: float | None = None
    rules: str = ""  # the strategies in a few words ("50% by company", "3 strategies, 2 rules")

    def state(self, emergency: bool = False) -> str:
        """``on``, ``off``, ``partial`` (below 100 %), or ``killed`` under the kill switch."""
        if emergency:
            return "killed"
        if not self.enabled:
            return "off"
        return "on" if self.percentage >= 100 else "partial"


@dataclass(frozen=True, slots=True)
class Sample:
    ts: float
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    error_rate: float | None = None  # a fraction: 0.01 is 1 %
    rps: float | None = None


@dataclass(frozen=True, slots=True)
class DeploymentView:
    id: str
    target: str = ""
    revision: str = ""
    release: str = ""
    operator: str = ""
    hosts: tuple[str, ...] = ()
    started_at: float | None = None
    finished_at: float | None = None
    outcome: str = ""
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class RollbackView:
    reason: str = ""
    trigger: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    outcome: str = ""


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of the incident log: plain data, drawn by the log widget."""

    ts: float
    severity: str
    source: str
    text: str
    detail: str = ""  # the evidence behind the line (Enter in the log shows it whole)


def _phases(spec: tuple[tuple[str, str], ...]) -> tuple[PhaseView, ...]:
    return tuple(PhaseView(name, title, i + 1) for i, (name, title) in enumerate(spec))


@dataclass(frozen=True, slots=True)
class RoomState:
    deployment: DeploymentView | None = None
    phases: tuple[PhaseView, ...] = field(default_factory=lambda: _phases(DEPLOY_PHASES))
    rollback: RollbackView | None = None
    rollback_phases: tuple[PhaseView, ...] = field(default_factory=lambda: _phases(ROLLBACK_PHASES))
    hosts: tuple[HostView, ...] = ()
    flags: tuple[FlagView, ...] = ()
    health: tuple[Sample, ...] = ()
    lock: str = ""
    emergency: str = ""  # the kill switch's reason while every flag is forced off
    emergency_at: float = 0.0  # when the kill switch last changed (event time)
    flags_listed_at: float = 0.0  # flag events up to this time are in the last listing
    warnings: int = 0
    errors: int = 0
    criticals: int = 0
    last_seq: int = 0
    last_ts: float = 0.0
    pinned: str | None = None  # follow only this deployment
    loading: str = ""  # what the room waits for before it can show anything (its config)
    # (time, label) where a deployment or rollback began: drawn as breaks on the graphs
    marks: tuple[tuple[float, str], ...] = ()
    health_live: bool = False  # the room samples the sources itself: draw only those

    @property
    def last_sample(self) -> Sample | None:
        return self.health[-1] if self.health else None

    def sample_age(self, now: float) -> float | None:
        """Seconds since the newest all-hosts sample's window closed (None: no sample)."""
        last = self.last_sample
        return None if last is None else max(0.0, now - last.ts)

    @property
    def releases(self) -> tuple[tuple[str, tuple[HostView, ...]], ...]:
        """Which release each host serves, grouped: ``((release, hosts), ...)``, the release
        serving the most hosts first; hosts with no known release under ``""``."""
        groups: dict[str, list[HostView]] = {}
        for host in self.hosts:
            groups.setdefault(host.release, []).append(host)
        ordered = sorted(groups.items(), key=lambda item: (item[0] == "", -len(item[1])))
        return tuple((release, tuple(hosts)) for release, hosts in ordered)

    @property
    def live_release(self) -> str:
        """The release every host serves, "mixed" when they differ, "" when unknown."""
        known = {h.release for h in self.hosts if h.release}
        if not known:
            return ""
        return known.pop() if len(known) == 1 else "mixed"

    @property
    def status(self) -> str:
        """One word for the header: loading, idle, running, rolling-back, or the outcome."""
        if self.loading:
            return "loading"
        rb = self.rollback
        if rb is not None and rb.finished_at is None:
            return "rolling-back"
        if rb is not None:
            outcome = _status(rb.outcome)
            if outcome == "done":
                return "rolled-back"
            return "rollback-partial" if outcome == "warning" else "rollback-failed"
        dep = self.deployment
        if dep is None:
            return "idle"
        if dep.finished_at is None and not dep.outcome:
            return "running"
        return dep.outcome or "finished"

    @property
    def running(self) -> bool:
        return self.status in ("running", "rolling-back")

    @property
    def timeline(self) -> tuple[PhaseView, ...]:
        """The phases to show: the rollback's while (and after) one runs."""
        return self.rollback_phases if self.rollback is not None else self.phases

    @property
    def current_phase(self) -> PhaseView | None:
        for phase in self.timeline:
            if phase.status == "running":
                return phase
        return None

    def elapsed(self, now: float) -> float | None:
        """Seconds since the deployment began: to its end, or to ``now`` while it runs."""
        dep = self.deployment
        if dep is None or dep.started_at is None:
            return None
        end = dep.finished_at
        if self.rollback is not None and self.rollback.finished_at is not None:
            end = max(end or 0.0, self.rollback.finished_at)
        if end is None or self.running:
            end = now
        return max(0.0, end - dep.started_at)


# -- the words events use, normalised ---------------------------------------------------


def _status(raw: Any) -> str:
    text = str(raw or "").strip().lower()
    if text in _DONE:
        return "done"
    if text in _FAILED:
        return "failed"
    if text in _WARN:
        return "warning"
    if text in _SKIPPED:
        return "skipped"
    if text in _CANCELLED:
        return "cancelled"
    return text or "done"


def _host_names(raw: Any) -> tuple[str, ...]:
    names: list[str] = []
    for item in raw or ():
        if isinstance(item, Mapping):
            item = item.get("name", "")
        if item:
            names.append(str(item))
    return tuple(names)
