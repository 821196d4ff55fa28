"""Several steps as one remote script: one exec channel per host instead of one per step.

Every SSH exec channel costs a round trip and a remote shell start; on a real network, or
through a bastion, tens of milliseconds each. Steps that need no decision on this machine in
between (write the host record, then prepare; link shared, install, mark finished...) go to
the host as one script. The script prints a marker line with a random nonce before and after
each step, on stdout and on stderr; the markers are parsed back into the very events a step
run on its own gives (``STEP_STARTED``, ``STEP_OUTPUT``, ``STEP_FINISHED`` with its exit
status) and into one :class:`CommandResult` per step. A failing step stops the script there,
exactly as a phase stops at a failing step today; the steps after it are not run. Each step
runs in its own ``sh -c`` (its ``cd``, ``set -e`` or ``exit`` stay its own), its command
quoted by :func:`backend.shell.q` like every value. The dry-run plan lists every step.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..shell import q
from ..transport import CommandResult

MARK = "@@portal-ops"


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
    """The script: each step in its own ``sh -c``, between begin/end markers on both streams
    (a leading newline ends a last line printed without one); stops at the first failure."""
    parts = []
    for index, step in enumerate(steps):
        begin = f"{MARK}:{nonce}:{index}:begin"
        end = f"{MARK}:{nonce}:{index}:end"
        stop = "" if step.may_fail else ' [ "$rc" -eq 0 ] || exit "$rc";'
        parts.append(
            f"printf '\\n%s\\n' {q(begin)}; printf '\\n%s\\n' {q(begin)} >&2; "
            f"sh -c {q(step.command)}; rc=$?; "
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

    def __post_init__(self) -> None:
        self._marker = re.compile(
            rf"^{re.escape(MARK)}:{re.escape(self.nonce)}:(\d+):(begin|end:(\d+))$"
        )

    def feed(self, stream: str, line: str) -> None:
        state = self.streams.setdefault(stream, _Stream())
        found = self._marker.match(line)
        if found is None:
            if state.held is not None:
                self._deliver(stream, state, state.held)
            state.held = line
            return
        if state.held:  # a real last line, ended by the marker's leading newline
            self._deliver(stream, state, state.held)
        state.held = None
        index = int(found.group(1))
        if found.group(2) == "begin":
            state.step = index
            if stream == "stdout":
                self.started[index] = time.monotonic()
                self.on_start(index)
            return
        state.step = None
        if stream == "stdout":
            self.status[index] = int(found.group(3))
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

    def results(self, host: str) -> list[CommandResult]:
        """One result per step that ran, in order."""
        return [
            CommandResult(
                host=host,
                command=self.steps[i].command,
                exit_status=self.status[i],
                stdout="\n".join(self.out.get(i, [])),
                stderr="\n".join(self.err.get(i, [])),
                seconds=self.seconds.get(i, 0.0),
            )
            for i in sorted(self.status)
        ]


def new_nonce() -> str:
    return secrets.token_hex(8)


class StepFailed(Exception):
    """A step of a script exited non-zero (and may not): the script stopped there."""

    def __init__(self, step: Step, result: CommandResult) -> None:
        self.step = step
        self.result = result
        super().__init__(f"{step.name} exited {result.exit_status}")


async def run_script(
    run: Run,
    host: str,
    steps: list[Step],
    *,
    retry_safe: bool = False,
    timeout: float | None = None,
) -> list[CommandResult]:
    """Run (or, in a dry-run, record) ``steps`` on ``host`` as one script, with the events
    and results of each step as if each ran alone. Returns the results of the steps that
    ran: all of them, or up to the first failing one (not ``may_fail``)."""
    from .lock import LockLost
    from .run import PhaseFailed, PlannedCommand

    for step in steps:
        if not step.quiet:
            run.plan.commands.append(
                PlannedCommand(run.phase, host, step.name, step.command, step.readonly)
            )
    if run.dry_run:
        # read-only probes still run in a dry-run (the plan is built from them); the rest
        # is only recorded
        ran = [s for s in steps if s.readonly]
        got = await _execute(run, host, ran, retry_safe=True, timeout=timeout) if ran else []
        by_step = {id(s): r for s, r in zip(ran, got, strict=False)}
        return [by_step.get(id(s)) or CommandResult(host, s.command, 0, "", "", 0.0) for s in steps]
    if run.lease is not None and any(
        not s.readonly and s.name not in ("lock", "unlock") for s in steps
    ):
        try:  # fencing: a run whose lock was removed or taken over stops here
            run.lease.check()
        except LockLost as exc:
            raise PhaseFailed(f"{host}: {steps[0].name} not run: {exc}", [host]) from None
    return await _execute(run, host, steps, retry_safe=retry_safe, timeout=timeout)


async def _execute(
    run: Run,
    host: str,
    steps: list[Step],
    *,
    retry_safe: bool,
    timeout: float | None,
) -> list[CommandResult]:
    from ..events import Kind
    from ..transport import TransportError
    from ..transport.base import command_tag

    def start(index: int) -> None:
        step = steps[index]
        if not step.quiet:
            run.emit(Kind.STEP_STARTED, host=host, step=step.name, command=step.command)

    def line(index: int, stream: str, text: str) -> None:
        step = steps[min(index, len(steps) - 1)]
        if not step.quiet:
            run.emit(Kind.STEP_OUTPUT, host=host, step=step.name, stream=stream, line=text)

    def end(index: int, status: int) -> None:
        step = steps[index]
        if not step.quiet:
            run.emit(
                Kind.STEP_FINISHED,
                host=host,
                step=step.name,
                ok=status == 0,
                exit_status=status,
                seconds=round(parser.seconds.get(index, 0.0), 3),
            )

    nonce = new_nonce()
    parser = ScriptParser(steps, nonce, start, line, end)
    if timeout is None:
        limits = run.config.ssh.step_timeouts
        timeout = sum(limits.get(s.name, run.config.ssh.command_timeout) for s in steps)
    tagged = command_tag.set(run.tag)
    try:
        await run.hosts[host].run(
            compose(steps, nonce),
            timeout=timeout,
            on_line=parser.feed,
            retry_safe=retry_safe or all(s.readonly for s in steps),
        )
    except TransportError as exc:
        parser.close()
        cut = parser.running()
        if cut is not None and not steps[cut].quiet:
            run.emit(
                Kind.STEP_FINISHED,
                host=host,
                step=steps[cut].name,
                ok=False,
                exit_status=None,
                seconds=round(time.monotonic() - parser.started[cut], 3),
                error=str(exc),
            )
        raise
    finally:
        command_tag.reset(tagged)
    parser.close()
    return parser.results(host)


def first_failure(steps: list[Step], results: list[CommandResult]) -> int | None:
    """Index of the step that stopped the script (non-zero, not ``may_fail``), if any."""
    for index, result in enumerate(results):
        if not result.ok and not steps[index].may_fail:
            return index
    return None


if TYPE_CHECKING:
    from .run import Run
