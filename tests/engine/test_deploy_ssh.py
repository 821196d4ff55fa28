"""The deploy engine against a real OpenSSH server on loopback (tests/fixtures/sshd.py)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from backend.config import parse_config
from backend.engine import Engine
from backend.events import Kind
from backend.journal import Journal
from backend.transport import HostKeyMismatch

from .faults import ssh_host
from .helpers import current, make_repo, ssh_config, tree


def engine_for(cfg: dict) -> Engine:
    config = parse_config(cfg)
    return Engine(config, journal=Journal(Path(config.state.dir) / "journal.db"))


async def deploy_v1(cfg: dict) -> str:
    result = await engine_for(cfg).deploy(revision="v1")
    assert result.ok, result.error
    return result.release


async def test_full_deployment_switches_and_keeps_old_release(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    old = await deploy_v1(cfg)
    engine = engine_for(cfg)
    result = await engine.deploy(revision="v2")
    assert result.outcome == "succeeded", result.error
    for host in ("host-1", "host-2"):
        assert current(tmp_path, host) == result.release
        assert (tmp_path / host / "current" / "VERSION").read_text() == "2\n"
        assert (tmp_path / host / "releases" / old / "VERSION").read_text() == "1\n"
        assert not (tmp_path / host / ".portal-ops" / "lock").exists()
    assert (tmp_path / "db.txt").read_text().split() == ["001_init", "002_more"]
    # the journal tells the story: nine phases, host states, operator
    events = engine.journal.events(result.deployment_id)
    finished = [e.phase for e in events if e.kind == Kind.PHASE_FINISHED]
    assert finished == [
        "validate-pre",
        "backup",
        "flags-prepare",
        "code",
        "database",
        "switch",
        "validate-post",
        "rollout",
        "finalize",
    ]
    row = engine.journal.get_deployment(result.deployment_id)
    assert row["outcome"] == "succeeded" and row["operator"]["user"]
    # the backup of the previous release exists and its checksum verifies
    sums = tmp_path / "host-1" / ".portal-ops" / "backups" / result.deployment_id / "SHA256SUMS"
    assert "code.tar.gz" in sums.read_text()


@pytest.mark.parametrize("phase", ["code", "database"])
async def test_failure_before_switch_leaves_old_release_live(
    sshd, tmp_path: Path, phase: str
) -> None:
    repo = make_repo(tmp_path, v2_migration_fails=(phase == "database"))
    cfg = ssh_config(sshd, tmp_path, repo)
    old = await deploy_v1(cfg)
    db_before = (tmp_path / "db.txt").read_text()
    if phase == "code":
        cfg["commands"]["install"] = "grep -q 1 VERSION"  # fails for version 2 only
    result = await engine_for(cfg).deploy(revision="v2")
    assert result.outcome in ("failed", "rolled_back")
    failed = [p for p in result.phases if p.status == "failed"]
    assert failed and failed[0].name == phase
    for host in ("host-1", "host-2"):
        assert current(tmp_path, host) == old
        assert not (tmp_path / host / ".portal-ops" / "lock").exists()
    # a failed migration is undone: the database is as it was before
    assert (tmp_path / "db.txt").read_text() == db_before


async def test_dry_run_changes_nothing_and_prints_every_command(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    await deploy_v1(cfg)
    before = {h: tree(tmp_path / h) for h in ("host-1", "host-2")}
    db_before = (tmp_path / "db.txt").read_text()
    plan = await engine_for(cfg).plan(revision="v2")
    text = plan.render()
    after = {h: tree(tmp_path / h) for h in ("host-1", "host-2")}
    assert before == after
    assert (tmp_path / "db.txt").read_text() == db_before
    for step in ("fetch", "link_shared", "install", "migrate", "switch", "lock"):
        assert f":{step}]" in text, step
    assert "host-1:" in text and "host-2:" in text
    assert plan.release_id in text


async def test_second_deploy_is_refused_by_the_lock(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    await deploy_v1(cfg)
    cfg["commands"]["install"] = "sleep 2"
    journal = engine_for(cfg).journal
    mark = journal.last_seq()
    first = asyncio.create_task(engine_for(cfg).deploy(revision="v2"))
    for _ in range(300):  # until the first deployment holds the lock (not a fixed sleep)
        await asyncio.sleep(0.1)
        if any(e.kind == Kind.LOCK and e.data.get("action") == "acquired"
               for e in journal.events(after_seq=mark)):  # fmt: skip
            break
    second = await engine_for(cfg).deploy(revision="v2")
    assert second.outcome == "failed"
    assert "deploy lock is held" in (second.error or "")
    assert "test-operator" in (second.error or "") or "operator" in (second.error or "")
    result = await first
    assert result.ok, result.error


async def test_host_key_mismatch_is_refused(sshd, tmp_path: Path) -> None:
    wrong = sshd.wrong_known_hosts(tmp_path / "known_hosts")
    host = ssh_host(sshd, known_hosts=str(wrong))
    with pytest.raises(HostKeyMismatch):
        await host.connect()
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    cfg["ssh"]["known_hosts"] = str(wrong)
    result = await engine_for(cfg).deploy(revision="v1")
    assert result.outcome == "failed"
    assert "host key" in (result.error or "")
    assert not (tmp_path / "host-1" / "releases").exists()


async def test_unlock_clears_a_stale_lock_after_showing_its_holder(sshd, tmp_path: Path) -> None:
    import subprocess
    import sys

    from backend.demo.sandbox import dump_toml

    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    await deploy_v1(cfg)
    # a deploy that died without releasing its lock (another machine's, say)
    stale = '{"deployment_id": "bp-20250801-0200", "operator": "alice@bastion", "since": 1754013600, "token": "t0", "pid": 1}'
    for host in ("host-1", "host-2"):
        lock = tmp_path / host / ".portal-ops" / "lock"
        lock.mkdir()
        (lock / "owner.json").write_text(stale)
        os.utime(lock / "owner.json", (1754013600, 1754013600))  # its heartbeat stopped then
    refused = await engine_for(cfg).deploy(revision="v2")
    assert refused.outcome == "failed" and "alice@bastion" in (refused.error or "")
    config_file = tmp_path / "portal-ops.toml"
    config_file.write_text(dump_toml(cfg))
    cli = [sys.executable, "-m", "tui.cli", "unlock", "--config", str(config_file)]
    declined = subprocess.run(cli, input="n\n", capture_output=True, text=True, timeout=60)
    assert (
        declined.returncode == 1
        and "alice@bastion" in declined.stdout
        and "bp-20250801-0200" in declined.stdout
    )
    assert (tmp_path / "host-1" / ".portal-ops" / "lock").exists()
    done = subprocess.run([*cli, "--yes"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "host-1" / ".portal-ops" / "lock").exists()
    assert not (tmp_path / "host-2" / ".portal-ops" / "lock").exists()
    result = await engine_for(cfg).deploy(revision="v2")
    assert result.ok, result.error


@pytest.mark.parametrize(("max_fail", "outcome"), [(0, "failed"), (50, "partial")])
async def test_max_fail_percentage_decides_whether_a_host_failure_stops_the_rest(
    sshd, tmp_path: Path, max_fail: int, outcome: str
) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo, hosts=3)
    old = await deploy_v1(cfg)
    # host-2's install fails for version 2 only
    cfg["commands"]["install"] = 'case "$PWD" in */host-2/*) grep -q 1 VERSION;; esac'
    cfg["rollout"]["max_fail_percentage"] = max_fail
    result = await engine_for(cfg).deploy(revision="v2")
    assert result.outcome == outcome, result.error
    assert current(tmp_path, "host-2") == old  # the failed host never switched
    assert (
        result.hosts["host-2"]["state"] == "failed" and "install" in result.hosts["host-2"]["error"]
    )
    others = {current(tmp_path, h) for h in ("host-1", "host-3")}
    assert others == ({old} if outcome == "failed" else {result.release})
    if outcome == "partial":
        assert "host-2" in (result.error or "")


async def test_emergency_flags_are_recorded(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo, hosts=1)
    engine = engine_for(cfg)
    result = await engine.deploy(revision="v1", force=True, skip_validation=True)
    assert result.ok, result.error
    row = engine.journal.get_deployment(result.deployment_id)
    assert row["options"] == {"force": True, "skip_validation": True}
    events = engine.journal.events(result.deployment_id)
    warnings = [e.data["message"] for e in events if e.kind == Kind.INCIDENT]
    assert any("--force --skip-validation" in w for w in warnings)
    pre = next(p for p in result.phases if p.name == "validate-pre")
    assert pre.status == "skipped" and "--skip-validation" in pre.detail
