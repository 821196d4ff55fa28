"""Recorded event data for the control room's snapshots, screenshots and benches.

Deterministic: fixed timestamps from ``T0`` (2025-08-01 02:00:00 UTC), fixed values, no
randomness, so every SVG is the same on every machine (tests pin TZ=UTC). The shapes are
the engine's own (``backend/engine/front.py``, ``backend/engine/run.py``, ``backend/engine/rollback.py``,
``backend/flags/service.py``): the same events a real deployment writes to the journal.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from backend.config import Config, parse_config
from backend.events import Event, Kind
from backend.journal import Journal

T0 = 1754013600.0  # 2025-08-01 02:00:00 UTC
DEPLOY_ID = "bp-20250801-0200"
RELEASE = "20250801020000"
PREVIOUS = "20250731161500"
HOSTS = ("web-1", "web-2", "web-3")
OPERATOR = {"user": "alice", "host": "bastion", "via": "ssh from 10.0.0.5"}
FLAGS = ("company-dashboard", "invoice-pdf-v2", "new-checkout")
RULES = {"new-checkout": "2 strategies, 3 rules"}  # the others: a gradual rollout by company

DEPLOY_PHASES = (
    ("validate-pre", "Pre-deployment validation", 6.2),
    ("backup", "Backup", 11.4),
    ("flags-prepare", "Feature flag preparation", 0.4),
    ("code", "Code deployment", 38.7),
    ("database", "Database updates", 4.9),
    ("switch", "Switch and restart", 21.3),
    ("validate-post", "Post-deployment validation", 8.8),
    ("rollout", "Gradual feature rollout", 30.0),
    ("finalize", "Finalization", 3.1),
)

ROLLBACK_PHASES = (
    ("rb-declare", "Declare the incident, take the lock", 0.6),
    ("rb-flags", "Emergency-disable flags", 0.2),
    ("rb-maintenance-on", "Maintenance on", 0.9),
    ("rb-switch", "Switch current to the previous release", 2.4),
    ("rb-database", "Database back", 5.1),
    ("rb-assets", "Assets and caches", 1.2),
    ("rb-restart", "Restart services", 3.3),
    ("rb-maintenance-off", "Maintenance off", 0.5),
    ("rb-verify", "Verify health", 4.0),
    ("rb-report", "Report, notify, release the lock", 0.7),
)

PRE_CHECKS = (
    "disk-space", "memory", "cpu-load", "php-version", "extensions", "database-connection",
    "redis-connection", "queue-workers", "ssl-certificate", "dns", "env-file",
    "storage-writable", "migrations-pending", "backups-recent", "error-rate-baseline",
)  # fmt: skip
POST_CHECKS = (
    "http-200", "login-page", "api-health", "database-writes", "queue-processing", "cache",
    "sessions", "assets-served", "cdn", "version-endpoint", "cron", "mail-queue",
    "search-index", "storage-links", "permissions", "error-rate", "p95-latency", "logs-clean",
)  # fmt: skip


def config(hosts: tuple[str, ...] = HOSTS) -> Config:
    """A config naming the recorded hosts (local transport: nothing ever connects)."""
    return parse_config(
        {
            "portal": {
                "name": "business-portal",
                "repository": "/srv/git/business-portal.git",
                "deploy_path": "/var/www/business-portal",
                "revision": "main",
            },
            "hosts": [
                {"name": name, "address": "127.0.0.1", "transport": "local"} for name in hosts
            ],
            "flags": {"release_flags": list(FLAGS)},
        },
        "recorded",
    )


class Recorder:
    """Builds events on a fixed clock; ``at(seconds)`` moves the clock forward."""

    def __init__(self) -> None:
        self.t = T0
        self.events: list[Event] = []

    def at(self, seconds: float) -> Recorder:
        self.t = T0 + seconds
        return self

    def emit(
        self,
        kind: Kind,
        *,
        run: str = "deploy",
        phase: str | None = None,
        host: str | None = None,
        deployment_id: str | None = DEPLOY_ID,
        **data: Any,
    ) -> None:
        self.events.append(
            Event(
                kind=kind.value,
                deployment_id=deployment_id,
                run=run,
                phase=phase,
                host=host,
                data=data,
                ts=round(self.t, 3),
            )
        )
        self.t += 0.05


def sample(t: float, *, bad: bool = False) -> dict[str, float]:
    """A smooth, fixed health curve; ``bad`` is the regression that triggers a rollback."""
    wave = math.sin(t / 9.0)
    p50 = 88 + 12 * wave
    p95 = 160 + 30 * wave
    p99 = 260 + 45 * wave
    error_rate = 0.0012 + 0.0006 * (1 + wave) / 2
    if bad:
        p50, p95, p99, error_rate = p50 * 2.4, p95 * 3.6, p99 * 3.1, error_rate * 25
    return {
        "p50": round(p50, 1),
        "p95": round(p95, 1),
        "p99": round(p99, 1),
        "error_rate": round(error_rate, 5),
        "rps": round(140 + 25 * math.cos(t / 13.0), 1),
        "requests": 0,
    }


def _metrics(rec: Recorder, start: float, end: float, *, bad_after: float | None = None) -> None:
    t = start
    while t <= end:
        rec.at(t)
        bad = bad_after is not None and t >= bad_after
        rec.emit(Kind.METRIC_SAMPLE, run="monitor", deployment_id=None, **sample(t, bad=bad))
        for i, host in enumerate(HOSTS):
            data = sample(t + i * 3, bad=bad and i == 0)
            rec.emit(Kind.METRIC_SAMPLE, run="monitor", host=host, deployment_id=None, **data)
        t += 2.0


def _flag(name: str, enabled: bool, pct: int, overrides: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"release flag {name}",
        "enabled": enabled,
        "percentage": pct,
        "stickiness": "company",
        "group": name,
        "overrides": {"company": {f"c{i}": True for i in range(overrides)}, "user": {}},
        # the strategies in words, as the flag service lists them (describe.summary)
        "summary": RULES.get(name, f"{pct}% by company"),
        "version": 1,
        "updated_at": 0.0,
    }


def _phase(rec: Recorder, number: int, name: str, title: str, seconds: float, run: str) -> None:
    rec.emit(Kind.PHASE_STARTED, run=run, phase=name, number=number, title=title)


def _finish(
    rec: Recorder, number: int, name: str, title: str, seconds: float, run: str, status: str
) -> None:
    rec.emit(
        Kind.PHASE_FINISHED,
        run=run,
        phase=name,
        number=number,
        title=title,
        status=status,
        seconds=seconds,
        detail="",
    )


def _checks(rec: Recorder, phase: str, names: tuple[str, ...], warn: int, fail: int) -> None:
    for i, name in enumerate(names):
        status = "pass"
        if i == len(names) - 1 and fail:
            status = "fail"
        elif i == 2 and warn:
            status = "warn"
        rec.emit(
            Kind.CHECK_RESULT,
            phase=phase,
            name=name,
            status=status,
            message="" if status == "pass" else f"{name} outside its limit",
        )
    passed = len(names) - warn - fail
    score = round(100 * (passed + 0.5 * warn) / len(names))
    rec.emit(
        Kind.CHECK_SUMMARY,
        phase=phase,
        score=score,
        decision="no-go" if fail else "go",
        reasons=[f"{names[-1]} failed"] if fail else [],
        counts={"pass": passed, "warn": warn, "fail": fail},
    )


def deployment(stage: str = "mid", *, log_lines: int = 0) -> list[Event]:
    """The recorded run, cut at ``stage``:

    - ``mid``: phases 1-5 done, phase 6 (switch) running on web-2 of three hosts;
    - ``done``: all nine phases succeeded;
    - ``rollback``: post-deployment validation failed, the rollback is in phase 5;
    - ``rolled_back``: the rollback completed.

    ``log_lines`` adds that many step-output lines in phase 4 (log benches).
    """
    rec = Recorder()
    rec.emit(
        Kind.DEPLOYMENT_STARTED,
        target="business-portal",
        revision="9f3c2a1",
        release=RELEASE,
        operator=OPERATOR,
        hosts=list(HOSTS),
        options={"force": False, "skip_validation": False},
        dry_run=False,
        pid=4242,
    )
    rec.emit(Kind.LOCK, action="acquired", holder={"user": "alice", "host": "bastion"})
    for host in HOSTS:
        rec.emit(Kind.HOST_STATE, host=host, state="live", release=PREVIOUS)
    _metrics(rec, 0, 40)
    timeline = 0.0
    cut_phase = {"mid": "switch"}.get(stage)
    failed_phase = "validate-post" if stage in ("rollback", "rolled_back") else None
    for number, (name, title, seconds) in enumerate(DEPLOY_PHASES, 1):
        rec.at(timeline)
        _phase(rec, number, name, title, seconds, "deploy")
        if name == "validate-pre":
            _checks(rec, name, PRE_CHECKS, warn=1, fail=0)
        if name == "backup":
            for host in HOSTS:
                rec.emit(Kind.STEP_STARTED, phase=name, host=host, step="db_dump",
                         command="mysqldump --single-transaction portal | gzip > backup.sql.gz")  # fmt: skip
                rec.emit(Kind.STEP_FINISHED, phase=name, host=host, step="db_dump", ok=True,
                         exit_status=0, seconds=3.2)  # fmt: skip
        if name == "flags-prepare":
            for flag in FLAGS:
                rec.emit(Kind.FLAG_CHANGED, run="flags", flag=flag, change="create",
                         before=None, after=_flag(flag, False, 100),
                         reason=f"{DEPLOY_ID}: release flag, created off",
                         operator=OPERATOR)  # fmt: skip
        if name == "code":
            for host in HOSTS:
                rec.emit(Kind.HOST_STATE, host=host, state="fetching", release=PREVIOUS)
                rec.emit(Kind.STEP_STARTED, phase=name, host=host, step="install",
                         command="composer install --no-dev --optimize-autoloader")  # fmt: skip
                for line in range(3 + log_lines // len(HOSTS)):
                    rec.emit(Kind.STEP_OUTPUT, phase=name, host=host, step="install",
                             stream="stdout",
                             line=f"  - Installing vendor/package-{line:04d} (v2.{line % 7}.0)")  # fmt: skip
                rec.emit(Kind.STEP_FINISHED, phase=name, host=host, step="install", ok=True,
                         exit_status=0, seconds=12.9)  # fmt: skip
                rec.emit(Kind.HOST_STATE, host=host, state="ready", release=PREVIOUS)
        if name == "database":
            rec.emit(Kind.STEP_STARTED, phase=name, host="web-1", step="migrate",
                     command="php artisan migrate --force")  # fmt: skip
            rec.emit(Kind.STEP_OUTPUT, phase=name, host="web-1", step="migrate", stream="stdout",
                     line="Migrating: 2025_07_30_120000_add_invoice_pdf_columns")  # fmt: skip
            rec.emit(Kind.STEP_FINISHED, phase=name, host="web-1", step="migrate", ok=True,
                     exit_status=0, seconds=2.1)  # fmt: skip
        if name == "switch":
            switch_hosts = HOSTS[:2] if cut_phase == "switch" else HOSTS
            for host in switch_hosts:
                rec.emit(Kind.HOST_STATE, host=host, state="draining", release=PREVIOUS)
                rec.emit(Kind.STEP_STARTED, phase=name, host=host, step="reload",
                         command="sudo systemctl reload php8.2-fpm")  # fmt: skip
                if host == switch_hosts[-1] and cut_phase == "switch":
                    rec.emit(Kind.HOST_STATE, host=host, state="switching", release=RELEASE)
                    break
                rec.emit(Kind.STEP_FINISHED, phase=name, host=host, step="reload", ok=True,
                         exit_status=0, seconds=1.4)  # fmt: skip
                rec.emit(Kind.HOST_STATE, host=host, state="live", release=RELEASE)
            rec.emit(Kind.INCIDENT, phase=name, severity="warning",
                     message="p95 215 ms on web-1 above the 200 ms target for 10 s")  # fmt: skip
        if name == cut_phase:
            _metrics(rec, 42, timeline + seconds * 0.6)
            return rec.events
        if name == "validate-post":
            _checks(rec, name, POST_CHECKS, warn=0, fail=1 if failed_phase else 0)
        if name == "rollout":
            for flag in FLAGS:
                for before, pct in ((0, 10), (10, 50), (50, 100)):
                    rec.emit(Kind.FLAG_CHANGED, run="flags", flag=flag, change="rollout-step",
                             before=_flag(flag, before > 0, before or 100),
                             after=_flag(flag, True, pct, overrides=2 if flag == FLAGS[0] else 0),
                             reason=f"{DEPLOY_ID}: rollout step {pct}%",
                             operator=OPERATOR)  # fmt: skip
        timeline += seconds
        rec.at(timeline)
        if name == failed_phase:
            _finish(rec, number, name, title, seconds, "deploy", "failed")
            break
        _finish(rec, number, name, title, seconds, "deploy", "succeeded")
    if failed_phase is None:
        _metrics(rec, 42, timeline)
        rec.emit(Kind.LOCK, action="released", holder={"user": "alice", "host": "bastion"})
        rec.emit(Kind.DEPLOYMENT_FINISHED, outcome="succeeded", seconds=timeline, error=None)
        return rec.events
    _metrics(rec, 42, timeline + 2, bad_after=timeline - 20)
    rec.at(timeline + 0.5)
    rec.emit(Kind.INCIDENT, severity="critical",
             message="phase 7 (Post-deployment validation) failed: p95-latency 612 ms > 500 ms."
             " Rolling back automatically.")  # fmt: skip
    rec.emit(
        Kind.ROLLBACK_STARTED,
        run="rollback",
        reason="automatic: phase 7 (Post-deployment validation) failed: p95-latency",
        trigger={"kind": "failure", "phase": "validate-post", "detail": "p95-latency"},
        release=RELEASE,
        previous={h: PREVIOUS for h in HOSTS},
        operator=OPERATOR,
        dry_run=False,
    )
    start = timeline + 1
    cut = 4 if stage == "rollback" else len(ROLLBACK_PHASES)
    for number, (name, title, seconds) in enumerate(ROLLBACK_PHASES, 1):
        rec.at(start)
        _phase(rec, number, name, title, seconds, "rollback")
        if name == "rb-flags":
            rec.emit(Kind.FLAG_CHANGED, run="flags", flag="*", change="emergency-disable",
                     before={"active": False}, after={"active": True, "reason": "rollback"},
                     reason="rollback of " + DEPLOY_ID, operator=OPERATOR)  # fmt: skip
        if name == "rb-switch":
            for host in HOSTS:
                rec.emit(Kind.HOST_STATE, run="rollback", host=host, state="rolled_back",
                         release=PREVIOUS)  # fmt: skip
        if number > cut:
            _metrics(rec, start - 1, start + 1, bad_after=start + 10)
            return rec.events
        start += seconds
        rec.at(start)
        _finish(rec, number, name, title, seconds, "rollback", "succeeded")
    _metrics(rec, start - 10, start, bad_after=start + 100)
    rec.emit(Kind.ROLLBACK_FINISHED, run="rollback", outcome="succeeded", seconds=start - timeline)
    rec.emit(Kind.DEPLOYMENT_FINISHED, outcome="rolled_back", seconds=start, error=None)
    return rec.events


def now_for(events: list[Event], after: float = 5.0) -> float:
    """The fixed 'now' of a snapshot: a few seconds after the last recorded event."""
    return max(e.ts for e in events) + after


def write_journal(journal: Journal, events: list[Event]) -> list[Event]:
    """Record events in a real journal (as the engine's bus stamper does)."""
    return [journal.record(e) for e in events]


def iter_stages() -> Iterator[str]:
    yield from ("mid", "done", "rollback", "rolled_back")


def build_room(
    path: Path,
    stage: str | None,
    *,
    watch: bool = False,
    theme: str | None = None,
    **options: Any,
) -> Any:
    """A room over a journal holding the recorded deployment cut at ``stage`` (None: empty),
    its clock fixed a few seconds after the last event. Used by the snapshot tests and by
    scripts/export_screenshots.py, so the screenshots are the snapshots."""
    from backend.engine import Engine
    from backend.feed import JournalFeed
    from tui.app import OperatorRoom, WatchRoom

    journal = Journal(path)
    events = write_journal(journal, deployment(stage)) if stage else []
    now = now_for(events) if events else T0
    cfg = config()
    common: dict[str, Any] = {"clock": lambda: now, "theme": theme, "load_flags": False}
    common.update(options)
    if watch:
        feed = JournalFeed(journal, poll_interval=0.05)
        return WatchRoom(cfg, journal=journal, feed=feed, source="journal", **common)
    return OperatorRoom(cfg, engine=Engine(cfg, journal=journal), **common)
