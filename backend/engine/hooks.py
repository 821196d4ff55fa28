"""``[hooks]``: operator commands before and after a phase, on this machine or on the hosts.

A hook is part of its phase: journaled as steps of it (``hook:before``/``hook:after``),
shown in the dry-run's plan, and a failure (non-zero exit, timeout) fails the phase like any
of its own steps, so a deployment rolls back or pauses as configured. Placeholders
(``{{deployment_id}}``, ``{{release}}``, ``{{phase}}``, ``{{host}}``) are filled through
:func:`backend.shell.fill`, so each value is one quoted word.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..config import HookConfig
from ..events import Kind, Severity
from ..shell import exports, fill
from .run import PhaseFailed

if TYPE_CHECKING:
    from .run import Run


async def with_hooks(run: Run, phase: str, body: Callable[[], Awaitable[str | None]]) -> str | None:
    """``body`` between the phase's before- and after-hooks (none configured: just ``body``)."""
    hooks = run.config.hooks
    before = [h for h in hooks.before if h.phase == phase]
    after = [h for h in hooks.after if h.phase == phase]
    for hook in before:
        await run_hook(run, hook, "before")
    detail = await body()
    for hook in after:
        await run_hook(run, hook, "after")
    return detail


def _values(run: Run, host: str) -> dict[str, str]:
    release = getattr(run, "release_id", None) or getattr(run, "release", "") or ""
    return {
        "deployment_id": run.deployment_id,
        "release": str(release),
        "phase": run.phase,
        "host": host,
    }


def _targets(run: Run, hook: HookConfig) -> list[str]:
    names = list(getattr(run, "active", None) or run.hosts)
    reachable = getattr(run, "reachable", None)
    if callable(reachable):
        names = [n for n in names if n in reachable()]
    if hook.on == "primary":
        primary = run.config.primary_host().name
        return [primary if primary in names else names[0]] if names else []
    return names


async def run_hook(run: Run, hook: HookConfig, when: str) -> None:
    step = f"hook:{when}"
    if hook.on == "local":
        await _local(run, hook, step)
        return
    env = exports(run.config.portal.env)

    async def one(name: str) -> None:
        command = env + fill(hook.run, **_values(run, name))
        await run.step_ok(name, step, command, timeout=hook.timeout)

    errors = await run.on_hosts(_targets(run, hook), one)
    failed = {n: e for n, e in errors.items() if e}
    if failed:
        raise PhaseFailed(
            f"{when}-hook of {run.phase} failed: " + "; ".join(map(str, failed.values())),
            list(failed),
        )


async def _local(run: Run, hook: HookConfig, step: str) -> None:
    """On the portal-ops machine, in its own process group (killed whole on timeout)."""
    command = fill(hook.run, **_values(run, ""))
    run.note(f"{step} (on this machine): {command}")
    if run.dry_run:
        return
    run.emit(Kind.STEP_STARTED, step=step, command=command, where="local")
    started = time.monotonic()
    env = {
        **os.environ,
        **run.config.portal.env,
        "PORTAL_OPS_DEPLOYMENT_ID": run.deployment_id,
        "PORTAL_OPS_PHASE": run.phase,
        "PORTAL_OPS_RELEASE": _values(run, "")["release"],
        "PORTAL_OPS_HOSTS": ",".join(run.hosts),
    }
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), hook.timeout)
    except (TimeoutError, asyncio.CancelledError) as exc:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        await proc.wait()
        if isinstance(exc, asyncio.CancelledError):
            raise
        output, status = b"", None
    else:
        status = proc.returncode
    lines = output.decode("utf-8", "replace").splitlines()
    for line in lines:
        run.emit(Kind.STEP_OUTPUT, step=step, stream="stdout", line=line)
    ok = status == 0
    run.emit(
        Kind.STEP_FINISHED,
        step=step,
        ok=ok,
        exit_status=status,
        seconds=round(time.monotonic() - started, 3),
    )
    if not ok:
        why = f"timed out after {hook.timeout:g}s" if status is None else f"exited {status}"
        tail = " | ".join(lines[-3:])
        run.incident(Severity.ERROR, f"{step} of {run.phase} {why}: {command}")
        raise PhaseFailed(f"{step} of {run.phase} (on this machine) {why}: {tail or command}")
