"""Resume a deployment that stopped without finishing (portal-ops killed, SSH to the bastion
lost, or paused on failure): from the journal's last checkpoint, at the phase after the
last one that succeeded, with the same release, revision and lock."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..events import Kind
from ..journal import process_alive
from ..phases import DEPLOY_PHASES
from .deploy import DeploymentResult, DeployOptions
from .rollback import RollbackError, last_checkpoint

if TYPE_CHECKING:
    from .front import Engine


async def resume_deployment(engine: Engine, deployment_id: str) -> DeploymentResult:
    from .deploy import Deployment

    journal = engine.journal
    row = journal.get_deployment(deployment_id)
    if row is None:
        raise RollbackError(f"unknown deployment id {deployment_id!r}")
    if row.get("status") == "finished" and row.get("outcome") != "paused":
        raise RollbackError(f"{deployment_id} finished ({row.get('outcome')}); nothing to resume")
    if (
        row.get("status") == "running"
        and process_alive(row.get("pid"))
        and row.get("pid") != os.getpid()
    ):
        raise RollbackError(f"{deployment_id} is still running in process {row.get('pid')}")
    events = journal.events(deployment_id)
    checkpoint = last_checkpoint(events)
    done = [
        e.data.get("number", 0)
        for e in events
        if e.kind == Kind.PHASE_FINISHED
        and e.run == "deploy"
        and e.data.get("status") in ("succeeded", "skipped")
    ]
    last_failed = [
        e.data.get("number", 0)
        for e in events
        if e.kind == Kind.PHASE_FINISHED
        and e.run == "deploy"
        and e.data.get("status") in ("failed", "interrupted")
    ]
    start_at = (max(done) + 1) if done else 1
    if last_failed and max(last_failed) < start_at:
        start_at = max(last_failed)
    if start_at > len(DEPLOY_PHASES):
        raise RollbackError(f"{deployment_id} completed every phase; nothing to resume")
    if start_at == 1 or not checkpoint:
        raise RollbackError(
            f"{deployment_id} stopped before anything was changed; start a new deployment instead"
        )
    options = DeployOptions(revision=checkpoint.get("revision"), **(row.get("options") or {}))
    deployment = Deployment(
        engine, deployment_id, checkpoint.get("release", row["release"]), options
    )
    deployment.resolved_revision = checkpoint.get("revision", "")
    deployment.revision = checkpoint.get("revision") or deployment.revision
    deployment.previous = dict(checkpoint.get("previous") or {})
    deployment.switched = list(checkpoint.get("switched") or [])
    deployment.active = list(checkpoint.get("active") or deployment.active)
    deployment.failed_hosts = dict(checkpoint.get("failed_hosts") or {})
    deployment.migrations_applied = int(checkpoint.get("migrations_applied") or 0)
    deployment.pending_before = checkpoint.get("pending_before")
    deployment.backups = dict(checkpoint.get("backups") or {})
    deployment.lock_owner["token"] = checkpoint.get("lock_token", deployment.lock_owner["token"])
    deployment.lock_taken = [h.name for h in engine.config.hosts]
    deployment.start_lease()  # renewed (and fenced) from now on, as in the first run
    journal.update_deployment(deployment_id, status="running", outcome="", pid=os.getpid())
    deployment.incident(
        "warning",
        f"resuming {deployment_id} at phase {start_at} ({DEPLOY_PHASES[start_at - 1][1]})",
    )  # type: ignore[arg-type]
    engine.current = deployment
    try:
        return await deployment.execute(start_at=start_at)
    finally:
        engine.current = None
