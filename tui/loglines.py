"""The incident log's lines: one readable line per event (severity label, source, text)
and the evidence behind it, for the log pane, the detail view and the header's counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend.events import Event, Kind
from backend.phases import DEPLOY_PHASES, ROLLBACK_PHASES

from .triggers import _holder, trigger_text
from .triggers import number as _num
from .triggers import operator_text as _operator
from .viewmodel import GLOBAL_FLAG, SEVERITY_RANK, LogLine, _host_names, _status

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
