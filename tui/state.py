"""The pure reducer that builds the control room's view model from events.

``reduce(state, event) -> state`` is all the room knows about the backend: whatever the
engine, the checks, the flags and the monitor emit lands here, and the widgets draw the
result. The view model itself is in ``tui.viewmodel``, the log's lines in
``tui.loglines``, flag listings in ``tui.flagviews``, who-acted words in
``tui.triggers``; their names are importable from here too. No Textual in this module:
it is unit-tested on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from backend.events import Event, Kind
from backend.phases import DEPLOY_PHASES, ROLLBACK_PHASES

from .flagviews import flag_from_dict, with_flags
from .loglines import log_line
from .triggers import _holder, trigger_text
from .triggers import number as _num
from .triggers import operator_text as _operator
from .viewmodel import (
    GLOBAL_FLAG,
    MAX_SAMPLES,
    SEVERITIES,
    SEVERITY_LABEL,
    SEVERITY_RANK,
    Checks,
    DeploymentView,
    FlagView,
    HostView,
    LogLine,
    PhaseView,
    RollbackView,
    RoomState,
    Sample,
    _host_names,
    _phases,
    _status,
)

__all__ = [
    "GLOBAL_FLAG",
    "MAX_SAMPLES",
    "SEVERITIES",
    "SEVERITY_LABEL",
    "SEVERITY_RANK",
    "Checks",
    "DeploymentView",
    "FlagView",
    "HostView",
    "LogLine",
    "PhaseView",
    "RollbackView",
    "RoomState",
    "Sample",
    "accepts",
    "flag_from_dict",
    "log_line",
    "reduce",
    "reduce_all",
    "trigger_text",
    "with_flags",
]


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


def _phases_of(state: RoomState, event: Event) -> tuple[PhaseView, ...]:
    """The phase list an event speaks of: the rollback's own, or the deployment's."""
    return state.rollback_phases if event.run == "rollback" else state.phases


def _with_phases(state: RoomState, event: Event, phases: tuple[PhaseView, ...]) -> RoomState:
    if event.run == "rollback":
        return replace(state, rollback_phases=phases)
    return replace(state, phases=phases)


def _on_phase_started(state: RoomState, event: Event) -> RoomState:
    if not event.phase:
        return state
    extra = {"title": event.data["title"]} if event.data.get("title") else {}
    phases = _update_phase(
        _phases_of(state, event), event.phase, status="running", started_at=event.ts, **extra
    )
    return _with_phases(state, event, phases)


def _on_phase_finished(state: RoomState, event: Event) -> RoomState:
    if not event.phase:
        return state
    d = event.data
    current = next((p for p in _phases_of(state, event) if p.name == event.phase), None)
    seconds = _num(d.get("seconds"))
    if seconds is None and current is not None and current.started_at is not None:
        seconds = max(0.0, event.ts - current.started_at)
    detail = d.get("detail") or ""
    phases = _update_phase(
        _phases_of(state, event),
        event.phase,
        status=_status(d.get("status")),
        seconds=seconds,
        detail=str(detail) if not isinstance(detail, Mapping) else "",
    )
    return _with_phases(state, event, phases)


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
