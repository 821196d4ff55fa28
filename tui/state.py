"""The control room's view model, and the pure reducer that builds it from events.

``reduce(state, event) -> state`` is all the room knows about the backend: whatever the
engine, the checks, the flags and the monitor emit lands here, and the widgets draw the
result. Everything is immutable (frozen dataclasses, tuples), so a snapshot can travel in
a message, a newer one can replace an older one unseen, and a widget can tell what
changed by identity (``old.phases is new.phases``). No Textual in this module: it is
unit-tested on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from backend.events import Event, Kind
from backend.phases import DEPLOY_PHASES, ROLLBACK_PHASES

from .triggers import number as _num
from .triggers import operator_text as _operator
from .triggers import trigger_text

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
        """One word for the header: idle, running, rolling-back, or the outcome."""
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


# -- the reducer --------------------------------------------------------------------------


_UNSET: Any = object()


def reduce(state: RoomState, event: Event, line: LogLine | None = _UNSET) -> RoomState:
    """The state after ``event``: pure, never raises on odd data (it is only displayed).

    ``line`` is the event's log line when the caller has it already (the bridge); the
    header's CRIT/ERROR/WARN counts are counts of those lines, so they match the log."""
    kind = str(event.kind)
    seq, ts = max(state.last_seq, event.seq), max(state.last_ts, event.ts)
    if accepts(state, event):
        handler = _HANDLERS.get(kind)
        if handler is not None:
            state = handler(state, event)
        if line is _UNSET:
            line = log_line(event)
        if line is not None and line.severity in _COUNTED:
            attr = _COUNTED[line.severity]
            state = replace(state, **{attr: getattr(state, attr) + 1})
    return replace(state, last_seq=seq, last_ts=ts)


_COUNTED = {"warning": "warnings", "error": "errors", "critical": "criticals"}


def reduce_all(state: RoomState, events: Iterable[Event]) -> RoomState:
    for event in events:
        state = reduce(state, event)
    return state


def accepts(state: RoomState, event: Event) -> bool:
    """Does ``event`` belong in this room? Events of another deployment are ignored unless
    one starts (and the room is not pinned); dry-runs (the plan shown before a deploy) are
    ignored unless the room is pinned to one."""
    dep_id = event.deployment_id
    kind = str(event.kind)
    if event.data.get("dry_run") and dep_id != state.pinned:
        return False
    if dep_id is None:
        return True
    current = state.deployment.id if state.deployment else None
    if state.pinned is not None and dep_id != state.pinned:
        return False
    if current is None or dep_id == current:
        return True
    return kind in (Kind.DEPLOYMENT_STARTED, Kind.ROLLBACK_STARTED)


def _host_names(raw: Any) -> tuple[str, ...]:
    names: list[str] = []
    for item in raw or ():
        if isinstance(item, Mapping):
            item = item.get("name", "")
        if item:
            names.append(str(item))
    return tuple(names)


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


def _on_deployment_started(state: RoomState, event: Event) -> RoomState:
    d = event.data
    if event.run != "deploy" and state.deployment and state.deployment.id == event.deployment_id:
        return state
    hosts = _host_names(d.get("hosts"))
    known = {h.name: h for h in state.hosts}
    deployment = DeploymentView(
        id=event.deployment_id or "",
        target=str(d.get("target", "")),
        revision=str(d.get("revision", "")),
        release=str(d.get("release", "")),
        operator=_operator(d.get("operator")),
        hosts=hosts,
        started_at=event.ts,
        dry_run=bool(d.get("dry_run") or (d.get("options") or {}).get("dry_run")),
    )
    return replace(
        state,
        deployment=deployment,
        phases=_phases(DEPLOY_PHASES),
        rollback=None,
        rollback_phases=_phases(ROLLBACK_PHASES),
        # a host keeps serving its release (and its figures stay true) until it switches
        hosts=tuple(
            replace(known[name], step="", step_failed=False) if name in known else HostView(name)
            for name in hosts
        ),
        marks=_mark(state, event.ts, deployment.id or "deploy"),
        warnings=0,
        errors=0,
        criticals=0,
    )


def _mark(state: RoomState, ts: float, label: str) -> tuple[tuple[float, str], ...]:
    return (*state.marks, (ts, label))[-20:]


def _on_deployment_finished(state: RoomState, event: Event) -> RoomState:
    dep = state.deployment or DeploymentView(id=event.deployment_id or "")
    outcome = str(event.data.get("outcome", "finished"))
    phases = tuple(
        replace(p, status="cancelled") if p.status == "running" else p for p in state.phases
    )
    return replace(
        state, deployment=replace(dep, finished_at=event.ts, outcome=outcome), phases=phases
    )


def _update_phase(
    phases: tuple[PhaseView, ...], name: str, **changes: Any
) -> tuple[PhaseView, ...]:
    found = False
    out: list[PhaseView] = []
    for phase in phases:
        if phase.name == name:
            phase = replace(phase, **changes)
            found = True
        out.append(phase)
    if not found:  # a phase this room does not know yet: show it rather than drop it
        title = changes.pop("title", None) or name
        out.append(replace(PhaseView(name, title, len(out) + 1), **changes))
    return tuple(out)


def _phase_field(state: RoomState, event: Event) -> str:
    return "rollback_phases" if event.run == "rollback" else "phases"


def _on_phase_started(state: RoomState, event: Event) -> RoomState:
    if not event.phase:
        return state
    attr = _phase_field(state, event)
    extra = {"title": event.data["title"]} if event.data.get("title") else {}
    phases = _update_phase(
        getattr(state, attr), event.phase, status="running", started_at=event.ts, **extra
    )
    return replace(state, **{attr: phases})


def _on_phase_finished(state: RoomState, event: Event) -> RoomState:
    if not event.phase:
        return state
    attr = _phase_field(state, event)
    d = event.data
    current = next((p for p in getattr(state, attr) if p.name == event.phase), None)
    seconds = _num(d.get("seconds"))
    if seconds is None and current is not None and current.started_at is not None:
        seconds = max(0.0, event.ts - current.started_at)
    detail = d.get("detail") or ""
    phases = _update_phase(
        getattr(state, attr),
        event.phase,
        status=_status(d.get("status")),
        seconds=seconds,
        detail=str(detail) if not isinstance(detail, Mapping) else "",
    )
    return replace(state, **{attr: phases})


def _update_host(room: RoomState, name: str, **changes: Any) -> RoomState:
    hosts = list(room.hosts)
    for i, host in enumerate(hosts):
        if host.name == name:
            hosts[i] = replace(host, **changes)
            break
    else:
        hosts.append(replace(HostView(name), **changes))
    return replace(room, hosts=tuple(hosts))


def _on_host_state(state: RoomState, event: Event) -> RoomState:
    if not event.host:
        return state
    changes: dict[str, Any] = {}
    if event.data.get("state"):
        changes["state"] = str(event.data["state"])
    release = str(event.data.get("release") or "")
    if release:
        changes["release"] = release
        current = next((h for h in state.hosts if h.name == event.host), None)
        if current is not None and current.release and current.release != release:
            changes.update(p95=None, error_rate=None, sampled_at=None)  # another release now
    return _update_host(state, event.host, **changes)


def _on_step_started(state: RoomState, event: Event) -> RoomState:
    if not event.host:
        return state
    return _update_host(state, event.host, step=str(event.data.get("step", "")), step_failed=False)


def _on_step_finished(state: RoomState, event: Event) -> RoomState:
    if not event.host:
        return state
    ok = event.data.get("ok")
    failed = ok is False or (ok is None and event.data.get("exit_status") not in (0, None))
    return _update_host(state, event.host, step=str(event.data.get("step", "")), step_failed=failed)


def _check_phase(state: RoomState, event: Event) -> str | None:
    if event.phase:
        return event.phase
    running = state.current_phase
    return running.name if running else None


def _on_check_result(state: RoomState, event: Event) -> RoomState:
    name = _check_phase(state, event)
    if name is None:
        return state
    d = event.data
    raw = d.get("status", d.get("result", d.get("outcome")))
    if raw is None and "ok" in d:
        raw = "pass" if d["ok"] else "fail"
    status = _status(raw)
    phase = next((p for p in state.phases if p.name == name), None)
    checks = (phase.checks if phase else None) or Checks()
    field_name = {"done": "passed", "warning": "warned", "failed": "failed", "skipped": "skipped"}
    attr = field_name.get(status, "passed")
    checks = replace(checks, **{attr: getattr(checks, attr) + 1})
    return replace(state, phases=_update_phase(state.phases, name, checks=checks))


def _on_check_summary(state: RoomState, event: Event) -> RoomState:
    name = _check_phase(state, event)
    if name is None:
        return state
    d = event.data
    phase = next((p for p in state.phases if p.name == name), None)
    checks = (phase.checks if phase else None) or Checks()
    counts = d.get("counts") if isinstance(d.get("counts"), Mapping) else {}
    if counts:
        checks = Checks(
            passed=int(counts.get("pass", counts.get("passed", checks.passed)) or 0),
            warned=int(counts.get("warn", counts.get("warning", counts.get("warned", 0))) or 0),
            failed=int(counts.get("fail", counts.get("failed", 0)) or 0),
            skipped=int(counts.get("skip", counts.get("skipped", 0)) or 0),
        )
    checks = replace(checks, score=_num(d.get("score")), decision=str(d.get("decision", "")))
    return replace(state, phases=_update_phase(state.phases, name, checks=checks))


def _sample(event: Event) -> Sample:
    d = event.data
    return Sample(
        ts=_num(d.get("ts")) or _num(d.get("end")) or event.ts,
        p50=_num(d.get("p50")),
        p95=_num(d.get("p95")),
        p99=_num(d.get("p99")),
        error_rate=_num(d.get("error_rate")),
        rps=_num(d.get("rps")),
    )


def _on_metric(state: RoomState, event: Event) -> RoomState:
    """Per-host samples go to the hosts table, the all-hosts ones to the graphs. A summary
    over a whole period (the monitor's baseline, ``aggregate``) is not a point in time."""
    d = event.data
    if d.get("aggregate"):
        return state
    live = event.run == "live"
    if state.health_live and not live:
        return state  # the room's own live samples cover the same windows: drawn once
    if live and not state.health_live:
        state = replace(state, health_live=True)
    host = event.host or d.get("host")
    sample = _sample(event)
    total = d.get("scope") == "total" or d.get("total") or host in (None, "", "total")
    if not total:
        return _update_host(
            state, str(host), p95=sample.p95, error_rate=sample.error_rate, sampled_at=sample.ts
        )
    health = (*state.health, sample)
    if len(health) > MAX_SAMPLES:
        health = health[-MAX_SAMPLES:]
    return replace(state, health=health)


def flag_from_dict(raw: Mapping[str, Any], previous: FlagView | None = None) -> FlagView:
    """A flag as the flag service lists it (``FlagRow.to_json``) or stores it (``Flag.to_json``)."""
    overrides = raw.get("overrides")
    base = previous or FlagView(name=str(raw.get("name", "")))
    if isinstance(overrides, Mapping):
        count = sum(len(v) for v in overrides.values() if isinstance(v, Mapping | list))
    elif isinstance(overrides, int):
        count = overrides
    else:
        count = base.overrides
    evals = raw.get("evaluations", raw.get("evaluations_last_hour", base.evaluations))
    pct = _num(raw.get("percentage"))
    flag = replace(
        base,
        enabled=bool(raw.get("enabled", base.enabled)),
        percentage=int(pct) if pct is not None else base.percentage,
        overrides=count,
        evaluations=int(evals) if isinstance(evals, int | float) else None,
        description=str(raw.get("description", base.description) or ""),
        rules=_rules(raw, base.rules),
    )
    last = raw.get("last_change")
    if isinstance(last, Mapping) and last.get("at"):
        flag = replace(
            flag,
            changed_by=str(last.get("by") or ""),
            reason=str(last.get("reason") or ""),
            change=str(last.get("action") or ""),
            changed_at=_num(last.get("at")),
        )
    return flag


def _rules(raw: Mapping[str, Any], previous: str) -> str:
    """The strategy summary: listed by the flag service, or made from a flag's JSON."""
    if isinstance(raw.get("summary"), str):
        return str(raw["summary"])
    if not isinstance(raw.get("strategies"), list) or not raw.get("name"):
        return previous
    from backend.flags.describe import summary
    from backend.flags.model import Flag

    try:
        return summary(Flag.from_json(raw))
    except (ValueError, TypeError, KeyError):
        return previous


def with_flags(
    state: RoomState,
    flags: Iterable[Mapping[str, Any]],
    emergency: str | None = None,
    listed_at: float = 0.0,
) -> RoomState:
    """Seed (or refresh) the flag table from the flag service's listing, taken at
    ``listed_at``: flag events older than that are already in it (and are then ignored);
    a flag changed by an event since is kept. ``emergency`` is the kill switch's reason
    when on ("" when off, None to leave it as events told)."""
    known = {f.name: f for f in state.flags}
    merged = dict(known)
    for raw in flags:
        name = str(raw.get("name", ""))
        if not name:
            continue
        current = known.get(name)
        if current is not None and (current.changed_at or 0.0) > listed_at:
            continue  # an event newer than the listing already told us
        merged[name] = flag_from_dict(raw, current or FlagView(name=name))
    flags_view = tuple(sorted(merged.values(), key=lambda f: f.name))
    changes: dict[str, Any] = {
        "flags": flags_view,
        "flags_listed_at": max(state.flags_listed_at, listed_at),
    }
    if emergency is not None and state.emergency_at <= listed_at:
        changes["emergency"] = emergency
    return replace(state, **changes)


def _on_flag_changed(state: RoomState, event: Event) -> RoomState:
    if event.ts <= state.flags_listed_at:  # already in the flag service's listing
        return state
    d = event.data
    after = d.get("after")
    name = str(d.get("flag") or (after.get("name") if isinstance(after, Mapping) else "") or "")
    change = str(d.get("change") or "")
    if name in (GLOBAL_FLAG, ""):  # the kill switch (or its restore): every flag at once
        if isinstance(after, Mapping) and "active" in after:
            active = bool(after.get("active"))
        else:
            active = "emergency" in change and "restore" not in change
        reason = str((after or {}).get("reason") or d.get("reason") or "kill switch")
        return replace(state, emergency=reason if active else "", emergency_at=event.ts)
    known = {f.name: f for f in state.flags}
    if after is None and change in ("deleted", "delete", "removed"):
        known.pop(name, None)
    else:
        previous = known.get(name) or FlagView(name=name)
        flag = flag_from_dict(after, previous) if isinstance(after, Mapping) else previous
        known[name] = replace(
            flag,
            changed_by=_operator(d.get("operator")),
            reason=str(d.get("reason") or ""),
            change=change,
            changed_at=event.ts,
        )
    return replace(state, flags=tuple(sorted(known.values(), key=lambda f: f.name)))


def _on_rollback_started(state: RoomState, event: Event) -> RoomState:
    d = event.data
    dep = state.deployment
    if dep is None or (event.deployment_id and dep.id != event.deployment_id):
        dep = DeploymentView(id=event.deployment_id or "", started_at=event.ts)
    rollback = RollbackView(
        reason=str(d.get("reason", "")), trigger=trigger_text(d.get("trigger")), started_at=event.ts
    )
    return replace(
        state,
        deployment=dep,
        rollback=rollback,
        rollback_phases=_phases(ROLLBACK_PHASES),
        marks=_mark(state, event.ts, "rollback"),
    )


def _on_rollback_finished(state: RoomState, event: Event) -> RoomState:
    rollback = state.rollback or RollbackView(started_at=event.ts)
    outcome = str(event.data.get("outcome", "finished"))
    phases = tuple(
        replace(p, status="cancelled") if p.status == "running" else p
        for p in state.rollback_phases
    )
    return replace(
        state,
        rollback=replace(rollback, finished_at=event.ts, outcome=outcome),
        rollback_phases=phases,
    )


def _holder(raw: Any) -> str:
    """Who holds a lock: the engine's owner record names the operator and deployment."""
    if isinstance(raw, Mapping):
        if raw.get("operator"):
            return str(raw["operator"])
        if raw.get("user"):
            return _operator(raw)
        return str(raw.get("deployment_id") or "")
    return str(raw or "")


def _on_lock(state: RoomState, event: Event) -> RoomState:
    action = str(event.data.get("action", ""))
    if action == "released":
        return replace(state, lock="")
    if action == "acquired":
        return replace(state, lock=_holder(event.data.get("holder")) or "held")
    return state


_HANDLERS = {
    Kind.DEPLOYMENT_STARTED.value: _on_deployment_started,
    Kind.DEPLOYMENT_FINISHED.value: _on_deployment_finished,
    Kind.PHASE_STARTED.value: _on_phase_started,
    Kind.PHASE_FINISHED.value: _on_phase_finished,
    Kind.STEP_STARTED.value: _on_step_started,
    Kind.STEP_FINISHED.value: _on_step_finished,
    Kind.HOST_STATE.value: _on_host_state,
    Kind.CHECK_RESULT.value: _on_check_result,
    Kind.CHECK_SUMMARY.value: _on_check_summary,
    Kind.METRIC_SAMPLE.value: _on_metric,
    Kind.FLAG_CHANGED.value: _on_flag_changed,
    Kind.ROLLBACK_STARTED.value: _on_rollback_started,
    Kind.ROLLBACK_FINISHED.value: _on_rollback_finished,
    Kind.LOCK.value: _on_lock,
}


# -- log lines ----------------------------------------------------------------------------


def _secs(raw: Any) -> str:
    value = _num(raw)
    return f" in {value:.1f} s" if value is not None else ""


def log_line(event: Event) -> LogLine | None:
    """The incident-log line for an event, or None (metric samples are graphed, not logged)."""
    kind = str(event.kind)
    d = event.data
    host = event.host or ""
    source = host or event.phase or event.run
    sev, text = "info", ""
    if kind in (Kind.DEPLOYMENT_STARTED, Kind.DEPLOYMENT_FINISHED) and d.get("dry_run"):
        verb = "built" if kind == Kind.DEPLOYMENT_FINISHED else "started"
        text = f"plan {event.deployment_id} (dry run: nothing changed) {verb}"
        source = "plan"
    elif kind == Kind.DEPLOYMENT_STARTED:
        text = (
            f"deployment {event.deployment_id} started: revision {d.get('revision', '?')}"
            f" release {d.get('release', '?')} by {_operator(d.get('operator'))}"
            f" on {len(_host_names(d.get('hosts')))} host(s)"
        )
        source = "deploy"
    elif kind == Kind.DEPLOYMENT_FINISHED:
        outcome = str(d.get("outcome", "finished"))
        sev = "ok" if _status(outcome) == "done" else "error"
        if outcome in ("rolled_back", "paused"):  # stopped safely: the rollback/pause says why
            sev = "warning"
        text = f"deployment {event.deployment_id} {outcome}{_secs(d.get('seconds'))}"
        source = "deploy"
    elif kind == Kind.PHASE_STARTED:
        num = d.get("number")
        total = len(ROLLBACK_PHASES) if event.run == "rollback" else len(DEPLOY_PHASES)
        label = f"{num}/{total} " if num else ""
        text = f"phase {label}{d.get('title') or event.phase} started"
    elif kind == Kind.PHASE_FINISHED:
        status = _status(d.get("status"))
        sev = {"done": "ok", "failed": "error", "warning": "warning"}.get(status, "info")
        detail = d.get("detail")
        extra = f": {detail}" if isinstance(detail, str) and detail else ""
        text = f"phase {event.phase} {d.get('status', 'done')}{_secs(d.get('seconds'))}{extra}"
    elif kind == Kind.STEP_STARTED:
        sev = "debug"
        text = f"$ {d.get('command') or d.get('step', '')}"
    elif kind == Kind.STEP_OUTPUT:
        sev = "debug"
        text = str(d.get("line", "")).rstrip("\n")
    elif kind == Kind.STEP_FINISHED:
        ok = d.get("ok")
        failed = ok is False or (ok is None and d.get("exit_status") not in (0, None))
        sev = "error" if failed else "debug"
        verdict = f"failed (exit {d.get('exit_status')})" if failed else "ok"
        text = f"step {d.get('step', '')} {verdict}{_secs(d.get('seconds'))}"
    elif kind == Kind.HOST_STATE:
        if not host:  # the engine's checkpoint, for resume: not news for a person
            return None
        release = f" (release {d['release']})" if d.get("release") else ""
        state = str(d.get("state", ""))
        sev = "error" if state in ("failed", "unhealthy") else "info"
        text = f"host {host}: {state}{release}"
    elif kind == Kind.LOCK:
        action = str(d.get("action", ""))
        sev = "warning" if action == "refused" else "info"
        holder = _holder(d.get("holder"))
        text = f"lock {action}" + (f" (holder {holder})" if holder else "")
        source = "lock"
    elif kind == Kind.CHECK_RESULT:
        raw = d.get("status", d.get("result"))
        if raw is None and "ok" in d:
            raw = "pass" if d["ok"] else "fail"
        status = _status(raw)
        sev = {"failed": "error", "warning": "warning"}.get(status, "debug")
        name = d.get("name") or d.get("check") or d.get("id") or "check"
        msg = d.get("message") or d.get("detail") or ""
        text = f"check {name}: {raw or status}" + (f": {msg}" if msg else "")
    elif kind == Kind.CHECK_SUMMARY:
        decision = str(d.get("decision", ""))
        sev = "ok" if _status(decision) == "done" else "warning"
        if _status(decision) == "failed":
            sev = "error"
        score = d.get("score")
        text = f"checks: score {score}, decision {decision.upper() or '?'}"
        reasons = d.get("reasons")
        if isinstance(reasons, list) and reasons:
            text += ": " + "; ".join(str(r) for r in reasons[:3])
    elif kind == Kind.METRIC_SAMPLE:
        return None
    elif kind == Kind.FLAG_CHANGED:
        change = str(d.get("change", "changed"))
        sev = "warning" if "emergency" in change else "info"
        who = _operator(d.get("operator"))
        why = d.get("reason")
        flag = d.get("flag") or "?"
        what = "every flag (kill switch)" if flag == GLOBAL_FLAG else f"flag {flag}"
        text = f"{what}: {change}{_flag_delta(d)}"
        text += (f" by {who}" if who else "") + (f": {why}" if why else "")
        source = "flags"
    elif kind == Kind.INCIDENT:
        sev = str(d.get("severity", "info")).lower()
        if sev not in SEVERITY_RANK:
            sev = "info"
        text = str(d.get("message", ""))
        source = host or event.run
    elif kind == Kind.ROLLBACK_STARTED:
        sev = "critical"
        text = f"ROLLBACK started ({trigger_text(d.get('trigger'))}): {d.get('reason', '')}"
        source = "rollback"
    elif kind == Kind.ROLLBACK_FINISHED:
        outcome = str(d.get("outcome", "finished"))
        sev = "ok" if _status(outcome) == "done" else "error"
        text = f"rollback {outcome}{_secs(d.get('seconds'))}"
        source = "rollback"
    elif kind == Kind.NOTIFICATION:
        ok = d.get("ok", True)
        sev = "debug" if ok else "warning"
        text = f"notify {d.get('channel', '?')}: {d.get('event', '')}" + (
            "" if ok else f" failed: {d.get('detail', '')}"
        )
        source = "notify"
    else:
        text = f"{kind} {d}"
    detail = _evidence(kind, d) if sev in ("warning", "error", "critical") else ""
    return LogLine(ts=event.ts, severity=sev, source=str(source or ""), text=text, detail=detail)


_EVIDENCE_KEYS = ("evidence", "trigger", "reasons", "counts", "detail", "message", "error")


def _evidence(kind: str, d: Mapping[str, Any]) -> str:
    """The data behind a warning or worse, as indented JSON: what the line could not say."""
    import json

    picked = {k: d[k] for k in _EVIDENCE_KEYS if d.get(k) not in (None, "", {}, [])}
    if kind == Kind.ROLLBACK_STARTED:
        picked.update({k: d[k] for k in ("reason", "release", "previous") if d.get(k)})
    if not picked:
        return ""
    return json.dumps(picked, indent=2, sort_keys=True, default=str)


def _flag_delta(d: Mapping[str, Any]) -> str:
    before, after = d.get("before"), d.get("after")
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return ""
    parts = []
    for key in ("enabled", "percentage"):
        if key in before and key in after and before[key] != after[key]:
            parts.append(f"{key} {before[key]} -> {after[key]}")
    return f" ({', '.join(parts)})" if parts else ""
