"""Rollback against a real sshd: failures after the switch, lost connections, a portal-ops
process killed with SIGKILL then resumed or rolled back. Each ends with every host on one
release, the database as before, the journal telling the story and the lock released."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from backend.events import Kind

from .helpers import current, make_repo, ssh_config
from .test_deploy_ssh import deploy_v1, engine_for


def assert_consistent(root: Path, release: str, db: str, hosts=("host-1", "host-2")) -> None:
    for host in hosts:
        assert current(root, host) == release, host
        assert not (root / host / ".portal-ops" / "lock").exists(), host
    assert (root / "db.txt").read_text() == db


async def test_failed_health_after_switch_rolls_back(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    old = await deploy_v1(cfg)
    db = (tmp_path / "db.txt").read_text()
    # version 2's reload fails on the canary host after its switch
    cfg["commands"]["reload"] = "grep -q 1 VERSION"
    engine = engine_for(cfg)
    result = await engine.deploy(revision="v2")
    assert result.outcome == "rolled_back", result.error
    assert result.rollback and result.rollback["outcome"] == "succeeded"
    assert_consistent(tmp_path, old, db)
    kinds = [e.kind for e in engine.journal.events(result.deployment_id)]
    assert Kind.ROLLBACK_STARTED in kinds and Kind.ROLLBACK_FINISHED in kinds
    rb_phases = [
        e.phase
        for e in engine.journal.events(result.deployment_id)
        if e.kind == Kind.PHASE_FINISHED and e.run == "rollback"
    ]
    assert len(rb_phases) == 10
    # rolling back again converges and changes nothing
    again = await engine_for(cfg).rollback(result.deployment_id, "second time")
    assert again.outcome == "succeeded"
    assert_consistent(tmp_path, old, db)


async def test_connection_killed_mid_phase_is_retried_or_rolled_back(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    old = await deploy_v1(cfg)
    db = (tmp_path / "db.txt").read_text()
    cfg["commands"]["migrate"] = "sleep 2 && " + cfg["commands"]["migrate"]
    mark = engine_for(cfg).journal.last_seq()
    task = asyncio.create_task(engine_for(cfg).deploy(revision="v2"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        journal_events = engine_for(cfg).journal.events(after_seq=mark)
        if any(
            e.kind == Kind.STEP_STARTED and e.data.get("step") == "migrate" for e in journal_events
        ):
            break
    await asyncio.sleep(0.5)
    assert sshd.kill_sessions() > 0
    result = await task
    assert result.outcome == "rolled_back", result.error
    assert "connection lost" in (result.error or "")
    assert_consistent(tmp_path, old, db)


def _spawn_deploy(config_file: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "deploy", "--config", str(config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _write_toml(cfg: dict, path: Path) -> Path:
    from backend.demo.sandbox import dump_toml

    path.write_text(dump_toml(cfg))
    return path


async def _killed_mid_switch(sshd, tmp_path: Path) -> tuple[dict, str, str, str]:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    old = await deploy_v1(cfg)
    db = (tmp_path / "db.txt").read_text()
    cfg["commands"]["reload"] = "sleep 1.5"
    config_file = _write_toml(cfg, tmp_path / "portal-ops.toml")
    journal = engine_for(cfg).journal
    mark = journal.last_seq()
    proc = _spawn_deploy(config_file)
    deadline = time.monotonic() + 120  # a condition with a deadline; the machine is shared
    deployment_id = ""
    while time.monotonic() < deadline and not deployment_id:
        await asyncio.sleep(0.1)
        for e in journal.events(after_seq=mark):
            if (
                e.kind == Kind.STEP_STARTED
                and e.data.get("step") == "reload"
                and e.host == "host-1"
            ):
                deployment_id = e.deployment_id or ""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert deployment_id
    row = journal.get_deployment(deployment_id)
    assert row["status"] == "running"  # the journal knows it never finished
    # ...and the next invocation says so, with the two ways out
    seen = subprocess.run(
        [sys.executable, "-m", "tui.cli", "history", "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"deployment {deployment_id} did not finish" in seen.stderr
    assert f"portal-ops resume {deployment_id}" in seen.stderr
    assert (tmp_path / "host-1" / ".portal-ops" / "lock").exists()  # and the lock stayed
    return cfg, deployment_id, old, db


async def test_sigkill_then_resume_completes_the_deployment(sshd, tmp_path: Path) -> None:
    cfg, deployment_id, _old, _db = await _killed_mid_switch(sshd, tmp_path)
    engine = engine_for(cfg)
    result = await engine.resume(deployment_id)
    assert result.outcome == "succeeded", result.error
    for host in ("host-1", "host-2"):
        assert current(tmp_path, host) == result.release
        assert not (tmp_path / host / ".portal-ops" / "lock").exists()
    assert (tmp_path / "db.txt").read_text().split() == ["001_init", "002_more"]
    assert any(
        e.kind == Kind.INCIDENT and "resuming" in e.data.get("message", "")
        for e in engine.journal.events(deployment_id)
    )


async def test_sigkill_then_rollback_restores_everything(sshd, tmp_path: Path) -> None:
    cfg, deployment_id, old, db = await _killed_mid_switch(sshd, tmp_path)
    engine = engine_for(cfg)
    result = await engine.rollback(deployment_id, "portal-ops died mid-deployment")
    assert result.outcome == "succeeded", json.dumps(result.to_dict(), default=str)[:2000]
    assert_consistent(tmp_path, old, db)
    row = engine.journal.get_deployment(deployment_id)
    assert row["status"] == "finished" and row["outcome"] == "rolled_back"


async def test_dump_policy_restores_only_a_verified_dump(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(
        sshd,
        tmp_path,
        repo,
        portal={**ssh_config(sshd, tmp_path, repo)["portal"], "database_rollback": "dump"},
    )
    old = await deploy_v1(cfg)
    db_before = (tmp_path / "db.txt").read_text()
    deployed = await engine_for(cfg).deploy(revision="v2")
    assert deployed.ok, deployed.error
    assert (tmp_path / "db.txt").read_text() != db_before  # v2 migrated
    dump = tmp_path / "host-1" / ".portal-ops" / "backups" / deployed.deployment_id / "db.dump"
    good = dump.read_bytes()
    dump.write_bytes(good + b"garbage\n")  # corrupt: its checksum no longer matches
    engine = engine_for(cfg)
    refused = await engine.rollback(deployed.deployment_id, "restore the dump")
    assert refused.outcome == "partial" and "corrupt" in refused.database
    assert (tmp_path / "db.txt").read_text() != db_before  # garbage was NOT restored
    critical = [
        e.data["message"]
        for e in engine.journal.events(deployed.deployment_id)
        if e.kind == Kind.INCIDENT and e.data.get("severity") == "critical"
    ]
    assert any("NOT restored" in m for m in critical)
    dump.write_bytes(good)  # the verified dump is back: a second rollback converges
    again = await engine_for(cfg).rollback(deployed.deployment_id, "again")
    assert again.outcome == "succeeded", again.to_dict()
    assert_consistent(tmp_path, old, db_before)


async def test_on_failure_pause_keeps_the_lock_and_says_how_to_go_on(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    base = ssh_config(sshd, tmp_path, repo)
    cfg = ssh_config(sshd, tmp_path, repo, portal={**base["portal"], "on_failure": "pause"})
    old = await deploy_v1(cfg)
    db = (tmp_path / "db.txt").read_text()
    cfg["commands"]["reload"] = "grep -q 1 VERSION"  # v2's reload fails after the switch
    engine = engine_for(cfg)
    result = await engine.deploy(revision="v2")
    assert result.outcome == "paused" and result.rollback is None
    assert (tmp_path / "host-1" / ".portal-ops" / "lock").exists()  # kept for resume/rollback
    messages = [
        e.data["message"]
        for e in engine.journal.events(result.deployment_id)
        if e.kind == Kind.INCIDENT
    ]
    assert any(
        f"portal-ops resume {result.deployment_id}" in m and "rollback" in m for m in messages
    )
    assert engine.journal.get_deployment(result.deployment_id)["outcome"] == "paused"
    undone = await engine_for(cfg).rollback(result.deployment_id, "operator chose to undo")
    assert undone.outcome == "succeeded", undone.to_dict()
    assert_consistent(tmp_path, old, db)
