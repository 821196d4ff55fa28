"""Several commands as one remote script: one exec channel per host instead of one each.

Every SSH exec channel costs a round trip and a remote shell start; on a real network, or
through a bastion, tens of milliseconds each. Steps that need no decision on this machine in
between (write the host record, then prepare; link shared, install, mark finished...) go to
the host as one script. The script prints a marker line with a random nonce before and after
each step, on stdout and on stderr; the markers are parsed back into the very events a step
run on its own gives (``STEP_STARTED``, ``STEP_OUTPUT``, ``STEP_FINISHED`` with its exit
status) and into one :class:`CommandResult` per step. A failing step stops the script there,
exactly as a phase stops at a failing step today; the steps after it are not run. Each step
runs in a subshell of the script's shell, ``( eval CMD )``: its ``cd``, variables, ``set -e``
or ``exit`` stay its own, a step that does not parse fails alone (status 2) as with
``sh -c``, and the host forks for it but starts no new ``sh`` (an exec per step that cost
more than most steps). Its command is quoted by :func:`backend.shell.q` like every value. :func:`compose_parallel` runs
independent read-only commands (the checks') side by side in one script, each reported
whole when all are done. The engine's use (events, plan, host record) is
backend/engine/script.py; this module imports nothing of the engine.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .shell import q
from .transport.base import CommandResult

MARK = "@@portal-ops"
# one pattern for every nonce (compiled once: a pattern per script cost more than the parse)
_MARKER = re.compile(rf"^{re.escape(MARK)}:(?P<nonce>[^:]+):(\d+):(begin|end:(\d+))$")


@dataclass(frozen=True)
class Step:
    """One step of a script: the name its events carry, its command; ``quiet``: no events of
    its own (the host record, written today without any); ``may_fail``: the script goes on
    after a non-zero status (the caller reads it)."""

    name: str
    command: str
    readonly: bool = False
    quiet: bool = False
    may_fail: bool = False


def compose(steps: list[Step], nonce: str) -> str:
    """The script: each step in its own subshell, between begin/end markers on both streams
    (a leading newline ends a last line printed without one); stops at the first failure."""
    parts = []
    for index, step in enumerate(steps):
        begin = f"{MARK}:{nonce}:{index}:begin"
        end = f"{MARK}:{nonce}:{index}:end"
        stop = "" if step.may_fail else ' [ "$rc" -eq 0 ] || exit "$rc";'
        parts.append(
            f"printf '\\n%s\\n' {q(begin)}; printf '\\n%s\\n' {q(begin)} >&2; "
            f"( eval {q(step.command)} ); rc=$?; "
            f"printf '\\n%s:%s\\n' {q(end)} \"$rc\"; printf '\\n%s:%s\\n' {q(end)} \"$rc\" >&2;"
            f"{stop}"
        )
    return "\n".join(parts)


@dataclass
class _Stream:
    """One stream's parser state: the step its lines belong to, and the line held back
    (an empty line just before a marker is the marker's own leading newline)."""

    step: int | None = None
    held: str | None = None


@dataclass
class ScriptParser:
    """Turns the script's output lines back into per-step events and results."""

    steps: list[Step]
    nonce: str
    on_start: Callable[[int], None]
    on_line: Callable[[int, str, str], None]
    on_end: Callable[[int, int], None]
    out: dict[int, list[str]] = field(default_factory=dict)
    err: dict[int, list[str]] = field(default_factory=dict)
    status: dict[int, int] = field(default_factory=dict)
    started: dict[int, float] = field(default_factory=dict)
    seconds: dict[int, float] = field(default_factory=dict)
    streams: dict[str, _Stream] = field(default_factory=dict)

    def feed(self, stream: str, line: str) -> None:
        state = self.streams.setdefault(stream, _Stream())
        found = _MARKER.match(line)
        if found is not None and found.group("nonce") != self.nonce:
            found = None  # a marker of another script (printed by a step): plain output
        if found is None:
            if state.held is not None:
                self._deliver(stream, state, state.held)
            state.held = line
            return
        if state.held:  # a real last line, ended by the marker's leading newline
            self._deliver(stream, state, state.held)
        state.held = None
        index = int(found.group(2))
        if found.group(3) == "begin":
            state.step = index
            if stream == "stdout":
                self.started[index] = time.monotonic()
                self.on_start(index)
            return
        state.step = None
        if stream == "stdout":
            self.status[index] = int(found.group(4))
            self.seconds[index] = time.monotonic() - self.started.get(index, time.monotonic())
            self.on_end(index, self.status[index])

    def close(self) -> None:
        """The channel closed: lines still held are delivered (output after the last
        marker, e.g. the shell's own complaint)."""
        for stream, state in self.streams.items():
            if state.held:
                self._deliver(stream, state, state.held)
            state.held = None

    def _deliver(self, stream: str, state: _Stream, line: str) -> None:
        index = state.step
        if index is None:  # outside any step (the shell itself): the last step begun
            index = max(self.started, default=0)
        (self.out if stream == "stdout" else self.err).setdefault(index, []).append(line)
        self.on_line(index, stream, line)

    def running(self) -> int | None:
        """The step begun and not ended (the one a lost link or a timeout cut off)."""
        pending = [i for i in self.started if i not in self.status]
        return pending[0] if pending else None

    def result(self, host: str, index: int) -> CommandResult | None:
        """Step ``index``'s result, or None if it did not run to its end."""
        if index not in self.status:
            return None
        return CommandResult(
            host=host,
            command=self.steps[index].command,
            exit_status=self.status[index],
            stdout="\n".join(self.out.get(index, [])),
            stderr="\n".join(self.err.get(index, [])),
            seconds=self.seconds.get(index, 0.0),
        )

    def results(self, host: str) -> list[CommandResult]:
        """One result per step that ran, in order."""
        return [r for i in sorted(self.status) if (r := self.result(host, i)) is not None]


def new_nonce() -> str:
    return secrets.token_hex(8)


# a stream (its stdin) shown, its first lines with the shell's own ``read`` (a check's
# output, a /proc file, is a few lines: no ``cat`` to start); from the 200th line on, ``cat`` shows the rest of the file
# from where ``read`` stopped (a long output costs one process, not one read per byte)
SHOW = (
    '{ n=0; while [ "$n" -lt 200 ] && { IFS= read -r l || [ -n "$l" ]; }; do '
    'printf \'%s\\n\' "$l"; n=$((n+1)); l=; done; [ "$n" -lt 200 ] || cat; }'
)


def compose_parallel(steps: list[Step], nonce: str) -> str:
    """Independent commands side by side in one script (each in the background, in a
    subshell of the script's shell as :func:`compose` runs a step, its output kept in a temp
    dir), then each one's output and status between the same markers as :func:`compose`:
    what a few sessions on one connection did, in one session."""
    run = [
        f'( ( eval {q(step.command)} ) >"$d/{i}.o" 2>"$d/{i}.e" </dev/null; echo $? >"$d/{i}.s" ) &'
        for i, step in enumerate(steps)
    ]
    show = []
    for i in range(len(steps)):
        begin = q(f"{MARK}:{nonce}:{i}:begin")
        end = q(f"{MARK}:{nonce}:{i}:end")
        # a stream left empty is not shown and the status is read: a check costs the host
        # no process beyond its own
        show.append(
            f'printf \'\\n%s\\n\' {begin}; [ ! -s "$d/{i}.o" ] || {SHOW} < "$d/{i}.o"; '
            f'printf \'\\n%s\\n\' {begin} >&2; [ ! -s "$d/{i}.e" ] || {SHOW} < "$d/{i}.e" >&2; '
            f'rc=; [ ! -f "$d/{i}.s" ] || read -r rc < "$d/{i}.s"; rc=${{rc:-255}}; '
            f"printf '\\n%s:%s\\n' {end} \"$rc\"; printf '\\n%s:%s\\n' {end} \"$rc\" >&2"
        )
    return "\n".join(
        [
            "d=$(mktemp -d) || exit 125",
            "trap 'rm -rf \"$d\"' EXIT",
            *run,
            "wait",
            *show,
        ]
    )


def first_failure(steps: list[Step], results: list[CommandResult]) -> int | None:
    """Index of the step that stopped the script (non-zero, not ``may_fail``), if any."""
    for index, result in enumerate(results):
        if not result.ok and not steps[index].may_fail:
            return index
    return None
