"""From the engine's event stream to notifications, so the engine never calls us itself.

It remembers what each deployment's ``deployment.started`` said (target, revision,
operator, hosts, dry-run) and the phase durations, because the later events carry only
their own facts. Dry runs send nothing. Our own events (``run = "notify"``) are ignored,
so a failed delivery's incident can never notify about itself.

Alarms are deduplicated per deployment, the way an incident tool wants them: the first
sev1 opens the alarm (``status = "triggered"``, ``dedup_key`` naming the deployment),
later sev1 alarms of the same deployment are dropped while it is open (a monitor rule
that fires says "critical" and then starts a rollback: one page, not two), and a
rollback that succeeds closes it (``status = "resolved"``). Channels that speak
incidents (PagerDuty) trigger and resolve on that; the others show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..events import Event, Kind, Severity
from .catalog import NotifySeverity

if TYPE_CHECKING:
    from .notifier import Notifier

FAILED_OUTCOMES = ("failed", "partial", "rolled_back", "paused")
NEEDS_PERSON = ("partial", "paused")  # an alarm: hosts are left in a state to look at
MANUAL_TRIGGERS = ("", "manual", "operator", "cli", "tui", "key", "user")


@dataclass
class _Run:
    facts: dict[str, Any] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    dry_run: bool = False
    rollback_severity: NotifySeverity | None = None
    alarm: NotifySeverity | None = None  # the open alarm's severity, until resolved


def is_automatic(data: dict[str, Any]) -> bool:
    """A rollback started by a rule (monitor, failed check), not by a person."""
    if "automatic" in data:
        return bool(data["automatic"])
    trigger = data.get("trigger")
    if isinstance(trigger, dict):
        return str(trigger.get("kind", "rule")).lower() not in MANUAL_TRIGGERS
    return str(trigger or "").strip().lower() not in MANUAL_TRIGGERS


class EngineBridge:
    """A bus subscriber: call it with each event; it calls ``notifier.send`` when due."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.runs: dict[str, _Run] = {}

    def _run(self, event: Event) -> _Run:
        return self.runs.setdefault(event.deployment_id or "", _Run())

    def __call__(self, event: Event) -> None:
        if event.run == "notify" or event.kind == Kind.NOTIFICATION:
            return
        data = event.data or {}
        run = self._run(event)
        if data.get("dry_run"):
            run.dry_run = True
        if run.dry_run:
            if event.kind in (Kind.DEPLOYMENT_FINISHED, Kind.ROLLBACK_FINISHED):
                self.runs.pop(event.deployment_id or "", None)
            return
        handler = {
            Kind.DEPLOYMENT_STARTED: self._started,
            Kind.PHASE_FINISHED: self._phase,
            Kind.DEPLOYMENT_FINISHED: self._finished,
            Kind.ROLLBACK_STARTED: self._rollback_started,
            Kind.ROLLBACK_FINISHED: self._rollback_finished,
            Kind.INCIDENT: self._incident,
        }.get(event.kind)  # type: ignore[call-overload]
        if handler is not None:
            handler(event, run, data)

    def _dedup_key(self, event: Event, run: _Run) -> str | None:
        if not event.deployment_id:
            return None
        target = run.facts.get("target") or getattr(self.notifier, "target", "") or "portal"
        return f"portal-ops/{target}/{event.deployment_id}"

    def _alarm(
        self, name: str, event: Event, run: _Run, ctx: dict[str, Any], severity: NotifySeverity
    ) -> None:
        """Send an alarm: one sev1 per deployment until resolved; later ones are dropped."""
        key = self._dedup_key(event, run)
        if key is not None and severity == NotifySeverity.SEV1:
            if run.alarm == NotifySeverity.SEV1:
                return  # already paged for this deployment; the resolve will follow
            run.alarm = severity
        elif key is not None and run.alarm is None:
            run.alarm = severity
        ctx.update(status="triggered", dedup_key=key)
        self.notifier.send(name, ctx, severity)

    def _context(self, event: Event, run: _Run, **more: Any) -> dict[str, Any]:
        ctx = {**run.facts, "deployment_id": event.deployment_id}
        if run.durations:
            ctx["durations"] = dict(run.durations)
        ctx.update({k: v for k, v in more.items() if v is not None})
        return ctx

    def _started(self, event: Event, run: _Run, data: dict[str, Any]) -> None:
        keys = ("target", "revision", "release", "operator", "hosts")
        run.facts.update({k: data[k] for k in keys if data.get(k)})
        if event.run == "rollback" or data.get("kind") == "rollback-only":
            return  # the rollback notifications cover it
        self.notifier.send("pre-deployment", self._context(event, run), NotifySeverity.INFO)

    def _phase(self, event: Event, run: _Run, data: dict[str, Any]) -> None:
        if event.phase and isinstance(data.get("seconds"), int | float):
            run.durations[event.phase] = float(data["seconds"])

    def _finished(self, event: Event, run: _Run, data: dict[str, Any]) -> None:
        if event.run == "rollback" or data.get("kind") == "rollback-only":
            return
        outcome = str(data.get("outcome", ""))
        summary = data.get("summary")
        if not isinstance(summary, dict):
            summary = {}
        ctx = self._context(
            event,
            run,
            outcome=outcome,
            duration=data.get("seconds"),
            reason=data.get("reason") or data.get("error") or summary.get("error"),
        )
        if outcome == "succeeded":
            self.notifier.send("deployment-success", ctx, NotifySeverity.INFO)
        elif outcome in NEEDS_PERSON and run.alarm is None:
            self._alarm("deployment-failed", event, run, ctx, NotifySeverity.SEV2)
        elif outcome in FAILED_OUTCOMES:
            # nothing changed, or already rolled back (and resolved) or already paged
            ctx["dedup_key"] = self._dedup_key(event, run)
            self.notifier.send("deployment-failed", ctx, NotifySeverity.SEV2)

    def _rollback_started(self, event: Event, run: _Run, data: dict[str, Any]) -> None:
        automatic = is_automatic(data)
        run.rollback_severity = NotifySeverity.SEV1 if automatic else NotifySeverity.SEV2
        ctx = self._context(
            event,
            run,
            reason=data.get("reason"),
            trigger=data.get("trigger"),
            automatic=automatic,
            operator=data.get("operator"),
        )
        self._alarm("rollback", event, run, ctx, run.rollback_severity)

    def _rollback_finished(self, event: Event, run: _Run, data: dict[str, Any]) -> None:
        outcome = str(data.get("outcome", ""))
        ok = outcome in ("succeeded", "ok", "rolled_back")
        # The all-clear goes where the alarm went; a failed rollback is a complete failure.
        severity = (run.rollback_severity or NotifySeverity.SEV2) if ok else NotifySeverity.SEV1
        ctx = self._context(
            event, run, outcome=outcome, duration=data.get("seconds"), hosts=data.get("hosts")
        )
        if ok:
            # the all-clear goes where the alarm went, and closes it
            severity = run.alarm or severity
            ctx.update(status="resolved", dedup_key=self._dedup_key(event, run))
            run.alarm = None
            self.notifier.send("rollback-finished", ctx, severity)
        else:
            run.alarm = None  # a failed rollback is news: it pages even if the alarm is open
            self._alarm("rollback-finished", event, run, ctx, severity)
        run.rollback_severity = None

    def _incident(self, event: Event, run: _Run, data: dict[str, Any]) -> None:
        if str(data.get("severity", "")).lower() != Severity.CRITICAL:
            return
        message = data.get("message") or "critical incident"
        ctx = self._context(event, run, message=message, evidence=data.get("evidence"))
        self._alarm("emergency", event, run, ctx, NotifySeverity.SEV1)
