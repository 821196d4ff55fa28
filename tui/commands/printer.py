"""Prints a run's events on a terminal or a pipe: one line per phase, host output attributed
and buffered per host (never interleaved), shown in full only for steps that failed."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Callable
from typing import TextIO

from backend.events import Event, Kind
from backend.inputs import printable
from backend.redact import redact


class EventPrinter:
    def __init__(self, out: TextIO | None = None, verbose: bool = False) -> None:
        self.out = out or sys.stdout
        self.verbose = verbose
        self.buffers: dict[tuple[str, str], list[str]] = defaultdict(list)

    def write(self, text: str) -> None:
        """One line, whatever the event carried: control characters escaped, secrets masked
        (host output and operator text cannot forge lines or drive the terminal)."""
        self.out.write(printable(redact(text)) + "\n")
        self.out.flush()

    def __call__(self, event: Event) -> None:
        d = event.data
        kind = event.kind
        run = "rollback " if event.run == "rollback" else ""
        if kind == Kind.DEPLOYMENT_STARTED:
            mode = " (dry-run)" if d.get("dry_run") else ""
            self.write(
                f"Deployment {event.deployment_id}{mode}: {d.get('target')} revision {d.get('revision')}"
                f" -> release {d.get('release')} on {', '.join(d.get('hosts', []))}"
            )
        elif kind == Kind.PHASE_STARTED:
            if self.verbose:
                self.write(f"{run}[{d.get('number')}] {d.get('title')} ...")
        elif kind == Kind.PHASE_FINISHED:
            total = 10 if event.run == "rollback" else 9
            status = d.get("status", "?")
            mark = {"succeeded": "ok", "skipped": "skip", "failed": "FAILED"}.get(status, status)
            detail = f"  {d.get('detail')}" if d.get("detail") else ""
            self.write(
                f"  {run}[{d.get('number')}/{total}] {d.get('title'):<42} {mark:>6} {d.get('seconds', 0):6.2f}s{detail}"
            )
        elif kind == Kind.STEP_OUTPUT and event.host:
            key = (event.host, d.get("step", ""))
            self.buffers[key].append(d.get("line", ""))
            if self.verbose:
                self.write(f"    {event.host:<12} {d.get('line', '')}")
        elif kind == Kind.STEP_FINISHED and event.host:
            key = (event.host, d.get("step", ""))
            lines = self.buffers.pop(key, [])
            if not d.get("ok") and not self.verbose:
                why = d.get("error") or f"exit {d.get('exit_status')}"
                self.write(f"    {event.host}: step {d.get('step')} failed ({why})")
                for line in lines[-15:]:
                    self.write(f"    {event.host} | {line}")
        elif kind == Kind.INCIDENT:
            self.write(f"  ! {d.get('severity', 'info').upper():<8} {d.get('message')}")
        elif kind == Kind.ROLLBACK_STARTED:
            self.write(f"Rollback of {event.deployment_id}: {d.get('reason')}")
        elif kind == Kind.ROLLBACK_FINISHED:
            self.write(f"Rollback {d.get('outcome')} in {d.get('seconds', 0):.1f}s")
        elif kind == Kind.LOCK and d.get("action") == "refused":
            self.write(f"  lock refused: held by {d.get('holder')}")


class JsonLinesPrinter:
    """Every event as one JSON line, for pipelines that follow a run as it goes."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr

    def __call__(self, event: Event) -> None:
        self.out.write(json.dumps(event.to_dict(), default=str) + "\n")
        self.out.flush()


def progress_printer(as_json: bool, events: bool, verbose: bool) -> Callable[[Event], None]:
    """Where a run's progress goes: with ``--json`` stdout is the result's alone, so the
    progress lines (or ``--events`` JSON lines) go to stderr."""
    if events:
        return JsonLinesPrinter(sys.stderr)
    return EventPrinter(out=sys.stderr if as_json else sys.stdout, verbose=verbose)
