"""The journal is a cache written off the event loop: a deploy whose command prints
thousands of lines commits them in batches from the writer thread (the loop's connection
writes nothing), every line still lands in the journal, and a rollback and a resume ask the
journal targeted questions instead of loading every event of the deployment."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from backend.events import Kind

from .faults import processes_with, unique_marker, wait_until
from .helpers import make_repo, ssh_config
from .test_deploy_ssh import deploy_v1, engine_for

LINES = 1000


def statements(engine) -> list[tuple[str, str]]:
    """(thread name, SQL) of every statement the journal's own (loop-side) connection runs."""
    seen: list[tuple[str, str]] = []
    engine.journal.db.set_trace_callback(
        lambda sql: seen.append((threading.current_thread().name, sql))
    )
    return seen


async def test_output_lines_are_committed_in_batches_off_the_loop(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    await deploy_v1(cfg)
    cfg["commands"]["install"] = f"seq {LINES}"
    engine = engine_for(cfg)
    seen = statements(engine)
    before = engine.journal.commits
    result = await engine.deploy(revision="v2")
    assert result.ok, result.error
    writes = [sql for _, sql in seen if sql.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    assert writes == []  # the loop's connection wrote nothing: the writer thread did
    lines = engine.journal.of_kind(result.deployment_id, Kind.STEP_OUTPUT)
    install = [e for e in lines if e.data.get("step") == "install"]
    assert len(install) == 2 * LINES  # every line of both hosts, none lost
    events = len(engine.journal.events(result.deployment_id))
    commits = engine.journal.commits - before
    assert 0 < commits <= events // 10, (commits, events)


async def test_resume_and_rollback_never_load_every_event(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    await deploy_v1(cfg)
    marker = unique_marker("journal")
    cfg["commands"]["install"] = f"seq 500; sh -c 'sleep 30' {marker}"
    task = asyncio.create_task(engine_for(cfg).deploy(revision="v2"))
    await wait_until(lambda: bool(processes_with(f"sleep 30 {marker}")), what="install running")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    cfg["commands"]["install"] = "test -f VERSION"
    engine = engine_for(cfg)
    seen = statements(engine)
    deployment_id = engine.journal.latest_deployment()["id"]
    resumed = await engine.resume(deployment_id)
    assert resumed.outcome == "succeeded", resumed.error
    rolled = await engine.rollback(deployment_id, "batching test")
    assert rolled.outcome == "succeeded", rolled
    full_loads = [sql for _, sql in seen if "FROM events WHERE seq >" in sql]
    assert full_loads == [], full_loads
