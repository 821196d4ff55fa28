"""Prints a run's events on a terminal or a pipe: one line per phase, host output attributed
and buffered per host (never interleaved), shown in full only for steps that failed.

One failure travels through several events (the rule's incident, the phase's detail, the
phase-failed incident, the rollback's reason, the rollback's incident), each quoting the
one before. :class:`Told` remembers what was said, so each later line refers to it
("rule error-rate (above)") and a line that only restates it is not printed.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TextIO

from backend.events import Event, Kind
from backend.inputs import printable
from backend.redact import redact

MIN_QUOTE = 24  # shorter fragments are too common to stand for a failure told above
ABOVE = " (above)"


def _pieces(text: str) -> list[str]:
    """The text, its sentences and its clauses: the parts later events quote."""
    out = [text]
    for sentence in text.split(". "):
        out.append(sentence.rstrip("."))
        out.extend(clause for clause in sentence.split("; "))
    return [piece.strip() for piece in out]


REPORT = re.compile(r" \(report [^)]*\)")


def _refer(fragment: str, printed: str) -> str:
    """How a later line names a fragment told above: as it was printed if that was already
    a reference, else by its subject (before the first colon)."""
    if ABOVE in printed:
        return REPORT.sub("", printed)
    head = fragment.split(":", 1)[0].strip()
    return head + ABOVE if head != fragment else fragment[:MIN_QUOTE].rstrip() + "…" + ABOVE


class Told:
    """What the printer has said about a run's failures."""

    def __init__(self) -> None:
        self.fragments: dict[str, str] = {}  # a fragment as events quote it -> as printed
        self.lines: set[str] = set()

    def shorten(self, text: str) -> str:
        """``text`` with every fragment said before replaced by a reference to it."""
        for fragment in sorted(self.fragments, key=len, reverse=True):
            if fragment in text:
                text = text.replace(fragment, _refer(fragment, self.fragments[fragment]))
        return text

    def remember(self, text: str, printed: str, *lines: str) -> None:
        """``text`` was printed as ``printed``; ``lines`` would restate it."""
        pieces, shown = _pieces(text), _pieces(printed)
        if len(shown) != len(pieces):  # a reference swallowed a sentence: no pairing
            shown = pieces
        for original, short in zip(pieces, shown, strict=True):
            if len(original) >= MIN_QUOTE:
                self.fragments.setdefault(original, short)
        self.lines.update(line.lower() for line in (text, printed, *lines))

    def said(self, *texts: str) -> bool:
        """Whether a line saying only one of ``texts`` would repeat an earlier one."""
        return any(text.lower() in self.lines for text in texts)


class EventPrinter:
    def __init__(self, out: TextIO | None = None, verbose: bool = False) -> None:
        self.out = out or sys.stdout
        self.verbose = verbose
        self.buffers: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.told = Told()

    def tell(self, text: str) -> str:
        """``text`` shortened by what was told, and remembered (as given and shortened)."""
        short = self.told.shorten(text)
        self.told.remember(text, short)
        return short

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
            said = d.get("detail") or ""
            if said and status == "failed":
                said = self.tell(str(said))
            detail = f"  {said}" if said else ""
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
            original = str(d.get("message") or "")
            message = self.told.shorten(original)
            if self.told.said(original, message):
                return
            self.told.remember(original, message)
            self.write(f"  ! {d.get('severity', 'info').upper():<8} {message}")
        elif kind == Kind.ROLLBACK_STARTED:
            self.write(
                f"Rollback of {event.deployment_id}: {self._why({**d, '_id': event.deployment_id})}"
            )
        elif kind == Kind.ROLLBACK_FINISHED:
            self.write(f"Rollback {d.get('outcome')} in {d.get('seconds', 0):.1f}s")
        elif kind == Kind.LOCK and d.get("action") == "refused":
            self.write(f"  lock refused: held by {d.get('holder')}")

    def _why(self, d: dict[str, Any]) -> str:
        """Who started a rollback, in words (the rule and its values, the operator), and
        the reason unless it only repeats a failure printed above."""
        from tui.triggers import trigger_text  # small, no Textual: fine on the CLI path

        reason = str(d.get("reason") or "")
        short = self.told.shorten(reason)
        rolled = f"rollback of {d.get('_id', '')}: "
        self.told.remember(reason, short, rolled + reason, rolled + short)
        trigger = d.get("trigger")
        if not trigger:
            return short or "no reason given"
        who = trigger_text(trigger)
        if not short or ABOVE in short or short.lower() == who.lower():
            return who
        return f"{who}: {short}"


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
