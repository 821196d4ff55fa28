"""Resume a deployment that stopped without finishing (portal-ops killed, interrupted with
Ctrl-C, SSH to the bastion lost, or paused on failure): at the phase it was in, with the same
release, revision SHA, migration baseline and lock. What the hosts recorded comes first, so
a deployment started on another machine (or a CI runner) can be resumed here."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from ..phases import DEPLOY_PHASES
from .deploy import DeploymentResult, DeployOptions
from .hoststate import merge
from .rollback import RollbackError, pick_deployment, refuse_if_alive, survey

if TYPE_CHECKING:
    from .deploy import Deployment
    from .front import Engine

RESUMABLE = ("paused", "interrupted", "")


async def retake_lock(deployment: Deployment) -> dict[str, str]:
    """The deployment's lock on its hosts again, before anything changes: kept where it still
    holds it (its token, whatever it is), taken again where a person removed it. Held by
    another deployment anywhere: what was taken here is given back and the resume refused.
    Returns host -> token. An unreachable host is left to the resume's reconnect to report."""
    from ..transport import TransportError
    from .lock import LockHolder, parse_lock_output

    owner = deployment.lock_owner
    tokens: dict[str, str] = {}
    taken: list[str] = []
    refused: list[str] = []

    async def one(name: str) -> None:
        layout = deployment.layout(name)
        try:
            result = await deployment.sh(name, "lock", layout.lock_acquire(owner), retry_safe=True)
        except TransportError:
            return
        status, holder = parse_lock_output(result.stdout)
        if status == "LOCKED":
            taken.append(name)
        elif holder.get("deployment_id") != deployment.deployment_id:
            refused.append(LockHolder(name, holder).describe())
            return
        tokens[name] = str(holder.get("token") or owner["token"])

    await asyncio.gather(*(one(n) for n in deployment.fleet))
    if refused:
        for name in taken:
            layout = deployment.layout(name)
            await deployment.sh(name, "unlock", layout.lock_release(owner["token"]))
        await deployment.close_hosts()
        raise RollbackError(
            f"cannot resume {deployment.deployment_id}: the deploy lock is "
            + "; ".join(refused)
            + ". Nothing was changed; see `portal-ops unlock`"
        )
    return tokens


async def resume_deployment(engine: Engine, deployment_id: str) -> DeploymentResult:
    from .deploy import Deployment

    journal = engine.journal
    hosts = engine.make_hosts()
    try:
        states = await survey(engine.config, hosts)
    finally:
        await asyncio.gather(*(h.close() for h in hosts.values()), return_exceptions=True)
    views = merge(states)
    deployment_id, row, view = pick_deployment(engine, deployment_id, views, "resume")
    undo = f"`portal-ops rollback {deployment_id}`"
    if view is not None and not view.unfinished:
        raise RollbackError(
            f"{deployment_id} finished ({view.status}) on the hosts; nothing to resume."
            f" Start a new deployment with `portal-ops deploy`, or undo it with {undo}"
        )
    if (
        view is None
        and row is not None
        and row.get("status") == "finished"
        and row.get("outcome") not in RESUMABLE
    ):
        raise RollbackError(
            f"{deployment_id} finished ({row.get('outcome')}); nothing to resume."
            " Start a new deployment with `portal-ops deploy`"
        )
    refuse_if_alive(engine, deployment_id, row, view, force=False)
    start_at = 0
    if row is not None:
        done = journal.phase_numbers(deployment_id, ("succeeded", "skipped"))
        stopped = journal.phase_numbers(deployment_id, ("failed", "interrupted"))
        start_at = (max(done) + 1) if done else 1
        if stopped and max(stopped) < start_at:
            start_at = max(stopped)
    if view is not None and view.number:
        start_at = max(start_at, view.number) if row is not None else view.number
    if start_at > len(DEPLOY_PHASES):
        raise RollbackError(f"{deployment_id} completed every phase; nothing to resume")
    checkpoint = journal.last_checkpoint(deployment_id) if row is not None else {}
    if view is not None:
        from_hosts = view.checkpoint()
        for key, value in from_hosts.items():
            if checkpoint.get(key) in (None, {}, [], "") and value not in (None, {}, [], ""):
                checkpoint[key] = value
        checkpoint["previous"] = {**from_hosts["previous"], **(checkpoint.get("previous") or {})}
    if start_at <= 1 or not checkpoint:
        raise RollbackError(
            f"{deployment_id} stopped before anything was changed; release its lock with {undo},"
            " then start a new deployment with `portal-ops deploy`"
        )
    options = (row or {}).get("options") or (view.options if view else {}) or {}
    options = DeployOptions(revision=checkpoint.get("revision"), **options)
    release = checkpoint.get("release") or (row or {}).get("release") or ""
    deployment = Deployment(engine, deployment_id, release, options, resumed_from=checkpoint)
    deployment.resolved_revision = checkpoint.get("revision", "")
    deployment.revision = checkpoint.get("revision") or deployment.revision
    deployment.previous = dict(checkpoint.get("previous") or {})
    deployment.switched = list(checkpoint.get("switched") or [])
    deployment.active = list(checkpoint.get("active") or deployment.active)
    deployment.failed_hosts = dict(checkpoint.get("failed_hosts") or {})
    deployment.migrations_applied = int(checkpoint.get("migrations_applied") or 0)
    deployment.pending_before = checkpoint.get("pending_before")
    deployment.baseline = checkpoint.get("baseline")
    deployment.backups = dict(checkpoint.get("backups") or {})
    deployment.created = list(checkpoint.get("created") or [])
    if view is not None and view.started_at:
        deployment.started = view.started_at
    deployment.lock_owner["token"] = checkpoint.get("lock_token", deployment.lock_owner["token"])
    deployment.lock_taken = list(deployment.fleet)
    tokens = await retake_lock(deployment)
    if row is None and view is not None:
        journal.cache_deployment(view.to_dict() | {"target": engine.config.portal.name})
    deployment.start_lease(tokens)  # renewed (and fenced) from now on, as in the first run
    journal.update_deployment(deployment_id, status="running", outcome="", pid=os.getpid())
    deployment.incident(
        "warning",  # type: ignore[arg-type]
        f"resuming {deployment_id} at phase {start_at} ({DEPLOY_PHASES[start_at - 1][1]})",
    )
    engine.current = deployment
    try:
        return await deployment.execute(start_at=start_at)
    finally:
        engine.current = None
