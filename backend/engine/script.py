"""The engine's steps as one remote script per host (see backend/script.py): the plan
lists every step, each step gets its own STEP_STARTED / STEP_OUTPUT / STEP_FINISHED events
and result, the fencing check and the run's command tag apply to the whole script."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..script import ScriptParser, Step, compose, first_failure, new_nonce
from ..transport import CommandResult

__all__ = ["Step", "first_failure", "run_script"]

# told as each step ends (its step, its exit status), while the script goes on: what a
# caller must know the moment a step is done (a switched host), even if the link is then lost
StepEnded = Callable[[Step, int], None]


async def run_script(
    run: Run,
    host: str,
    steps: list[Step],
    *,
    retry_safe: bool = False,
    timeout: float | None = None,
    on_end: StepEnded | None = None,
    unlock_fenced: bool = False,
) -> list[CommandResult]:
    """Run (or, in a dry-run, record) ``steps`` on ``host`` as one script, with the events
    and results of each step as if each ran alone. Returns the results of the steps that
    ran: all of them, or up to the first failing one (not ``may_fail``). ``unlock_fenced``:
    fenced on the host even though a step gives the lock back (see :func:`_fence`)."""
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
    fence = _fence(run, host, steps, unlock_fenced)
    if fence is not None:
        try:  # fencing here: a run whose lease found its lock gone stops before the host
            run.lease.check()  # type: ignore[union-attr]
        except LockLost as exc:
            raise PhaseFailed(f"{host}: {steps[0].name} not run: {exc}", [host]) from None
    limits = run.config.ssh.step_timeouts
    if timeout is not None or len(steps) < 2 or not any(s.name in limits for s in steps):
        return await _fenced(run, host, steps, fence, retry_safe, timeout, on_end)
    # a step with a timeout of its own ([ssh] step_timeouts) goes alone: the bound is its own
    results: list[CommandResult] = []
    for group in _segments(steps, limits):
        got = await _fenced(run, host, group, fence, retry_safe, None, on_end)
        results += got
        if len(got) < len(group) or first_failure(group, got) is not None:
            break
    return results


FENCE = "fence"


def _fence(run: Run, host: str, steps: list[Step], unlock_fenced: bool = False) -> Step | None:
    """The host-side fencing step for a script that changes ``host`` while this run holds
    its lock: the lock's token checked on the host itself, first, in the same script. A run
    whose lock was removed (``unlock --force``) or taken over stops at its next change there,
    not at its next heartbeat. None for read-only scripts and those that take or give back
    the lock (they check the token themselves), unless ``unlock_fenced``: a script that
    changes the host, then gives the lock back (a deployment's finalize)."""
    lease = run.lease
    if lease is None or host not in lease.tokens:
        return None
    if any(s.name == "lock" for s in steps) or all(s.readonly for s in steps):
        return None
    if not unlock_fenced and any(s.name == "unlock" for s in steps):
        return None
    return Step(FENCE, run.layout(host).lock_held(lease.tokens[host]), readonly=True, quiet=True)


async def _fenced(
    run: Run,
    host: str,
    steps: list[Step],
    fence: Step | None,
    retry_safe: bool,
    timeout: float | None,
    on_end: StepEnded | None,
) -> list[CommandResult]:
    """``steps`` after the fencing step, if any; its result is not one of theirs."""
    from .run import PhaseFailed

    if fence is None:
        return await _execute(
            run, host, steps, retry_safe=retry_safe, timeout=timeout, on_end=on_end
        )
    if timeout is None:  # the steps' own bound, as without the fence
        limits = run.config.ssh.step_timeouts
        timeout = sum(limits.get(s.name, run.config.ssh.command_timeout) for s in steps)
    results = await _execute(
        run, host, [fence, *steps], retry_safe=retry_safe, timeout=timeout, on_end=on_end
    )
    if results and not results[0].ok:
        lost = f"the deploy lock on {host} is no longer ours (removed or taken over)"
        if run.lease is not None and not run.lease.lost:
            run.lease.lost = lost
        raise PhaseFailed(f"{host}: {steps[0].name} not run: {lost}", [host])
    return results[1:]


def _segments(steps: list[Step], limits: dict[str, float]) -> list[list[Step]]:
    """Runs of steps without a timeout of their own, each timed step alone."""
    groups: list[list[Step]] = []
    for step in steps:
        if step.name in limits or not groups or groups[-1][-1].name in limits:
            groups.append([step])
        else:
            groups[-1].append(step)
    return groups


async def _execute(
    run: Run,
    host: str,
    steps: list[Step],
    *,
    retry_safe: bool,
    timeout: float | None,
    on_end: StepEnded | None = None,
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
        if on_end is not None:
            on_end(step, status)

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


if TYPE_CHECKING:
    from .run import Run
