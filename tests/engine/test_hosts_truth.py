"""The hosts hold the truth: ids unique across machines, cleanup that deletes only what a
run created, host-side records that let another machine (another state dir, no journal)
roll back or resume, the migration baseline, remote commands that die with their session,
every exception a failure, interrupted is not finished, rollback that keeps going and
refuses to undo the wrong deployment, the revision resolved once. Real sshd throughout."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from backend.engine import Deployment, DeployOptions
from backend.engine.rollback import RollbackError
from backend.events import Kind
from backend.ids import new_deployment_id
from backend.transport import CommandTimeout, ConnectionLost

from .faults import (
    kill_sshd_sessions,
    processes_with,
    run_cli,
    ssh_host,
    unique_marker,
    wait_until,
    write_toml,
)
from .helpers import current, git, make_repo, ssh_config, stored_record
from .test_deploy_ssh import deploy_v1, engine_for


def second_machine(cfg: dict, root: Path) -> dict:
    """The same config on another machine: its own, empty state dir (no journal)."""
    other = json.loads(json.dumps(cfg))
    other["state"] = {"dir": str(root / "state-elsewhere")}
    return other


def test_ids_are_unique_within_one_second_and_sort_by_time() -> None:
    ids: set[str] = set()
    for _ in range(200):  # one machine: never one it knows
        ids.add(new_deployment_id(ids, now=1754013600))
    assert len(ids) == 200
    # two machines that know nothing of each other: 24 random bits apart
    assert new_deployment_id(now=1754013600) != new_deployment_id(now=1754013600)
    assert all(i.startswith("bp-20250801-020000-") for i in ids)  # UTC, to the second
    assert new_deployment_id(now=1754013601) > max(ids)


async def test_an_id_already_on_a_host_is_refused_and_the_live_release_kept(
    sshd, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    live = await deploy_v1(cfg)
    # another machine, same second, same id: before, its phase 4 failed on the existing
    # folder and the cleanup deleted it, i.e. the live release, on every host
    other = engine_for(second_machine(cfg, tmp_path))
    clash = Deployment(other, live, live, DeployOptions(revision="v2"))
    result = await clash.execute()
    assert result.outcome == "failed"
    assert "exists already" in (result.error or "") and "nothing was changed" in result.error
    for host in ("host-1", "host-2"):
        assert current(tmp_path, host) == live
        assert (tmp_path / host / "current" / "VERSION").read_text() == "1\n"
        assert not (tmp_path / host / ".portal-ops" / "lock").exists()


async def test_a_deploy_refused_by_the_lock_leaves_the_holders_release(
    sshd, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    await deploy_v1(cfg)
    cfg["commands"]["install"] = "sleep 1.5"
    holder_engine = engine_for(cfg)
    holder = asyncio.create_task(holder_engine.deploy(revision="v2"))
    journal = holder_engine.journal
    await wait_until(
        lambda: any(
            e.kind == Kind.STEP_STARTED and e.data.get("step") == "install"
            for e in journal.events(after_seq=0)
        ),
        what="the holder's install",
    )
    row = journal.latest_deployment()
    assert row is not None
    # the same id from another machine: refused, and nothing of the holder's deleted
    other = engine_for(second_machine(cfg, tmp_path))
    refused = await Deployment(other, row["id"], row["release"], DeployOptions("v2")).execute()
    assert refused.outcome == "failed"
    result = await holder
    assert result.ok, result.error
    for host in ("host-1", "host-2"):
        assert current(tmp_path, host) == result.release
        assert (tmp_path / host / "current" / "VERSION").read_text() == "2\n"


async def test_rollback_and_history_from_a_machine_without_the_journal(
    sshd, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    old = await deploy_v1(cfg)
    db = (tmp_path / "db.txt").read_text()
    deployed = await engine_for(cfg).deploy(revision="v2")
    assert deployed.ok, deployed.error
    other_cfg = second_machine(cfg, tmp_path)
    config_file = write_toml(other_cfg, tmp_path / "elsewhere.toml")
    listed = run_cli(config_file, "history", "--from-hosts")
    assert listed.returncode == 0, listed.stderr
    assert deployed.deployment_id in listed.stdout and "succeeded" in listed.stdout
    # no id: the newest deployment the hosts record, undone from here
    result = await engine_for(other_cfg).rollback(None, "from the other machine")
    assert result.deployment_id == deployed.deployment_id
    assert result.outcome == "succeeded", result.to_dict()
    for host in ("host-1", "host-2"):
        assert current(tmp_path, host) == old
        assert not (tmp_path / host / ".portal-ops" / "lock").exists()
    assert (tmp_path / "db.txt").read_text() == db
    unknown = run_cli(config_file, "rollback", "bp-19990101-000000-0000")
    assert unknown.returncode == 2 and "unknown deployment id" in unknown.stderr
    assert "portal-ops history" in unknown.stderr


async def test_older_deployment_rollback_is_refused_unless_forced(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    await deploy_v1(cfg)
    second = await engine_for(cfg).deploy(revision="v2")
    assert second.ok, second.error
    third = await engine_for(cfg).deploy(revision="v2")
    assert third.ok, third.error
    db = (tmp_path / "db.txt").read_text()
    config_file = write_toml(cfg, tmp_path / "portal-ops.toml")
    refused = run_cli(config_file, "rollback", second.deployment_id)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert third.deployment_id in refused.stderr and "--force" in refused.stderr
    assert f"portal-ops rollback {third.deployment_id}" in refused.stderr
    for host in ("host-1", "host-2"):  # nothing changed
        assert current(tmp_path, host) == third.release
        assert not (tmp_path / host / ".portal-ops" / "lock").exists()
    assert (tmp_path / "db.txt").read_text() == db
    with pytest.raises(RollbackError):
        await engine_for(cfg).rollback(second.deployment_id, "older")
    engine = engine_for(cfg)
    forced = await engine.rollback(second.deployment_id, "older, knowingly", force=True)
    assert forced.outcome == "succeeded", forced.to_dict()
    warned = [
        e.data["message"]
        for e in engine.journal.events(second.deployment_id)
        if e.kind == Kind.INCIDENT and "--force" in e.data.get("message", "")
    ]
    assert warned and third.deployment_id in warned[0]


async def test_migration_baseline_recorded_before_migrate_lets_another_machine_undo_it(
    sshd, tmp_path: Path
) -> None:
    """Killed (here: cancelled, link and all) during migrate, after one migration applied:
    the journal has no count, but the hosts have the baseline; rollback from another machine
    measures and undoes exactly that migration, after the migrate process is confirmed dead."""
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    old = await deploy_v1(cfg)
    db = (tmp_path / "db.txt").read_text()
    marker = unique_marker("migrate")
    cfg["commands"]["migrate"] += f" && sh -c 'sleep 60' {marker}"
    engine = engine_for(cfg)
    task = asyncio.create_task(engine.deploy(revision="v2"))
    await wait_until(lambda: bool(processes_with(f"sleep 60 {marker}")), what="migrate running")
    assert "002_more" in (tmp_path / "db.txt").read_text()
    kill_sshd_sessions(sshd)  # the link is gone while migrate sleeps on the host
    result = await task
    assert result.outcome == "rolled_back", result.error
    await wait_until(lambda: not processes_with(marker), 10, "the migrate to die with its session")
    assert (tmp_path / "db.txt").read_text() == db
    for host in ("host-1", "host-2"):
        assert current(tmp_path, host) == old


async def test_timed_out_and_cut_off_commands_die_on_the_host(sshd, tmp_path: Path) -> None:
    host = ssh_host(sshd, max_reconnects=0)
    done = tmp_path / "finished"
    marker = unique_marker("timeout")
    # timeouts inside the remote shell's start-up: tests/engine/test_remote_group.py
    with pytest.raises(CommandTimeout, match="killed on the host"):
        await host.run(f"sh -c 'sleep 30' {marker}; touch {done}", timeout=0.5)
    assert not processes_with(f"sleep 30 {marker}")  # confirmed dead before run() returned
    await wait_until(lambda: not processes_with(marker), 10, "its wrapper to end")
    marker2 = marker + "-lost"
    task = asyncio.create_task(host.run(f"sh -c 'sleep 30' {marker2}; touch {done}"))
    await wait_until(lambda: bool(processes_with(f"sleep 30 {marker2}")), what="running")
    assert kill_sshd_sessions(sshd) > 0
    with pytest.raises(ConnectionLost):
        await task
    await wait_until(lambda: not processes_with(marker2), 10, "the group to die with the link")
    assert not done.exists()
    await host.close()


async def test_a_command_not_sent_before_the_link_dropped_is_sent_once(
    sshd, tmp_path: Path
) -> None:
    """A link lost while idle (between phases) is found before the next command is sent:
    that command, retry-safe or not, runs once after a reconnect (one cut while it runs is
    not repeated: the test above; end to end: the fault matrix's SSH kills at phase
    boundaries)."""
    host = ssh_host(sshd, max_reconnects=1)
    log = tmp_path / "ran"
    assert (await host.run(f"echo first >> {log}")).ok
    conn = host._conn
    assert conn is not None and kill_sshd_sessions(sshd) > 0
    await wait_until(conn.is_closed, 10, "the client to see the link gone")
    assert (await host.run(f"echo second >> {log}")).ok  # not retry-safe, never sent
    assert log.read_text().split() == ["first", "second"]
    await host.close()


async def test_per_step_timeout_from_the_config(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo, ssh={"step_timeouts": {"install": 1}})
    old = await deploy_v1({**cfg, "ssh": {**cfg["ssh"], "step_timeouts": {}}})
    marker = unique_marker("step")
    cfg["commands"]["install"] = f"sh -c 'sleep 30' {marker}"
    result = await engine_for(cfg).deploy(revision="v2")
    assert result.outcome == "failed" and "timed out after 1s" in (result.error or "")
    # the step's own command is confirmed dead when the run returns; the wrapper that ran it
    # (its argv quotes the command: "sleep 30' <marker>") may still be exiting as its channel
    # closes, and a watcher that outlives the kill does nothing: its pid file is gone
    assert not processes_with(f"sleep 30 {marker}"), processes_with(marker)
    assert current(tmp_path, "host-1") == old


async def test_any_exception_in_a_phase_takes_the_failure_path(sshd, tmp_path: Path) -> None:
    """An invalid health URL (httpx.InvalidURL) after the canary's switch used to escape:
    canary switched, lock kept, row running. Now: a failed phase, rolled back, lock freed."""
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    old = await deploy_v1(cfg)
    db = (tmp_path / "db.txt").read_text()
    cfg["hosts"][0]["health_url"] = "http://[::1:8080/health"
    engine = engine_for(cfg)
    result = await engine.deploy(revision="v2")
    # the rollback ran: code back everywhere, database back; it cannot verify host-1's
    # health (the same bad URL), so it says partial and keeps the lock, truthfully
    assert result.outcome == "partial", result.error
    assert "InvalidURL" in (result.error or "")
    assert result.rollback and "InvalidURL" in json.dumps(result.rollback)
    for host in ("host-1", "host-2"):
        assert current(tmp_path, host) == old
    assert (tmp_path / "db.txt").read_text() == db
    row = engine.journal.get_deployment(result.deployment_id)
    assert row["status"] == "finished" and row["outcome"] == "partial"


async def interrupted_in_install(sshd: Any, tmp_path: Path) -> tuple[dict, dict, str]:
    """v1 live, then v2 cancelled (Ctrl-C) while its install runs: (config, its journal row,
    the install's process marker)."""
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    await deploy_v1(cfg)
    marker = unique_marker("install")
    cfg["commands"]["install"] = f"sh -c 'sleep 30' {marker}"
    engine = engine_for(cfg)
    task = asyncio.create_task(engine.deploy(revision="v2"))
    await wait_until(lambda: bool(processes_with(f"sleep 30 {marker}")), what="install running")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    row = engine.journal.latest_deployment()
    return cfg, row, marker


async def test_ctrl_c_leaves_the_deployment_interrupted_and_resume_finishes_it(
    sshd, tmp_path: Path
) -> None:
    cfg, row, marker = await interrupted_in_install(sshd, tmp_path)
    assert row["outcome"] == "interrupted"
    assert (tmp_path / "host-1" / ".portal-ops" / "lock").exists()  # kept for resume
    await wait_until(lambda: not processes_with(marker), 10, "install killed with the cancel")
    cfg["commands"]["install"] = "test -f VERSION"
    resumed = await engine_for(cfg).resume(row["id"])
    assert resumed.outcome == "succeeded", resumed.error
    for host in ("host-1", "host-2"):
        assert current(tmp_path, host) == row["release"]
        assert not (tmp_path / host / ".portal-ops" / "lock").exists()


async def test_resume_takes_back_a_lock_removed_meanwhile_and_refuses_one_taken_by_another(
    sshd, tmp_path: Path
) -> None:
    """An interrupted deployment's lock cleared by a person (`unlock --force`): resume takes
    it again before changing anything (its scripts are fenced on the token); held by another
    deployment meanwhile: resume refuses and changes nothing."""
    cfg, row, marker = await interrupted_in_install(sshd, tmp_path)
    await wait_until(lambda: not processes_with(marker), 10, "install killed with the cancel")
    cfg["commands"]["install"] = "test -f VERSION"
    locks = [tmp_path / h / ".portal-ops" / "lock" for h in ("host-1", "host-2")]
    live = {h: current(tmp_path, h) for h in ("host-1", "host-2")}

    # another deployment holds host-2's lock: refused, nothing changed, its lock left alone
    shutil.rmtree(locks[1])
    locks[1].mkdir()
    (locks[1] / "owner.json").write_text(
        json.dumps({"token": "theirs", "deployment_id": "bp-20990101-000000-other1"})
    )
    from backend.engine.rollback import RollbackError

    with pytest.raises(RollbackError) as refused:
        await engine_for(cfg).resume(row["id"])
    said = str(refused.value)
    assert "held on host-2" in said and "bp-20990101-000000-other1" in said, said
    assert "Nothing was changed" in said, said
    assert {h: current(tmp_path, h) for h in live} == live
    assert "theirs" in (locks[1] / "owner.json").read_text()

    # both removed (`unlock --force`): resume takes them again and finishes
    for lock in locks:
        shutil.rmtree(lock)
    resumed = await engine_for(cfg).resume(row["id"])
    assert resumed.outcome == "succeeded", resumed.error
    for host in ("host-1", "host-2"):
        assert current(tmp_path, host) == row["release"]
        assert not (tmp_path / host / ".portal-ops" / "lock").exists()


async def test_a_rollback_switch_failing_on_one_host_goes_on_and_keeps_the_database(
    sshd, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo, hosts=3)
    old = await deploy_v1(cfg)
    db_v1 = (tmp_path / "db.txt").read_text()
    deployed = await engine_for(cfg).deploy(revision="v2")
    assert deployed.ok, deployed.error
    db_v2 = (tmp_path / "db.txt").read_text()
    # host-2's switch back cannot rename over `current`
    blocker = tmp_path / "host-2" / f".current.{old}.tmp"
    blocker.mkdir()
    engine = engine_for(cfg)
    result = await engine.rollback(deployed.deployment_id, "switch fails on host-2")
    assert result.outcome == "partial"
    assert current(tmp_path, "host-1") == old and current(tmp_path, "host-3") == old
    assert current(tmp_path, "host-2") == deployed.release
    assert (tmp_path / "db.txt").read_text() == db_v2  # v2 code still serves: schema stays
    assert (tmp_path / "host-1" / ".portal-ops" / "lock").exists()  # partial keeps the lock
    messages = [
        e.data["message"]
        for e in engine.journal.events(deployed.deployment_id)
        if e.kind == Kind.INCIDENT
    ]
    assert any(f"portal-ops rollback {deployed.deployment_id}" in m for m in messages)
    shutil.rmtree(blocker)
    again = await engine_for(cfg).rollback(deployed.deployment_id, "fixed host-2")
    assert again.outcome == "succeeded", again.to_dict()
    for host in ("host-1", "host-2", "host-3"):
        assert current(tmp_path, host) == old
        assert not (tmp_path / host / ".portal-ops" / "lock").exists()
    assert (tmp_path / "db.txt").read_text() == db_v1


async def test_the_revision_is_resolved_once_even_if_the_branch_moves(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    cfg["rollout"]["concurrency"] = 1  # host-1 prepares, then host-2
    first_sha = git(repo, "rev-parse", "main")
    # host-1's install pushes a commit to the branch being deployed
    cfg["commands"]["install"] = (
        f'case "$PWD" in */host-1/*) cd {repo} && echo 3 > VERSION && '
        "git -c user.name=t -c user.email=t@localhost commit -qam v3;; esac"
    )
    result = await engine_for(cfg).deploy(revision="main")
    assert result.ok, result.error
    assert git(repo, "rev-parse", "main") != first_sha  # the branch did move
    assert result.revision == first_sha
    for host in ("host-1", "host-2"):
        assert (tmp_path / host / "current" / "REVISION").read_text().strip() == first_sha


async def test_first_deployment_with_maintenance_failing_after_the_switch_says_it_is_live(
    sshd, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    base = ssh_config(sshd, tmp_path, repo)
    cfg = ssh_config(
        sshd, tmp_path, repo, portal={**base["portal"], "maintenance_during_migrations": True}
    )
    cfg["commands"]["maintenance_on"] = "touch MAINTENANCE"  # no `current` yet: in the release
    cfg["commands"]["maintenance_off"] = "rm -f MAINTENANCE"
    cfg["commands"]["reload"] = "false"  # fails right after the canary's switch
    engine = engine_for(cfg)
    result = await engine.deploy(revision="v1")
    assert result.outcome == "failed", result.error  # not "rolled_back": nothing to go to
    assert current(tmp_path, "host-1") == result.release
    messages = [
        e.data["message"]
        for e in engine.journal.events(result.deployment_id)
        if e.kind == Kind.INCIDENT
    ]
    assert any("stays live" in m and "host-1" in m for m in messages)


async def test_backups_leave_out_backup_exclude(sshd, tmp_path: Path) -> None:
    import tarfile

    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo, hosts=1)
    cfg["commands"]["install"] = "mkdir -p .venv/lib && echo big > .venv/lib/x"
    await deploy_v1(cfg)
    result = await engine_for(cfg).deploy(revision="v2")
    assert result.ok, result.error
    backup = tmp_path / "host-1" / ".portal-ops" / "backups" / result.deployment_id
    with tarfile.open(backup / "code.tar.gz") as archive:
        names = archive.getnames()
    assert any(n.endswith("/VERSION") for n in names)
    assert not any("/.venv" in n for n in names)


async def test_a_resume_that_cannot_continue_exits_2_says_what_to_run_and_changes_nothing(
    sshd, tmp_path: Path
) -> None:
    from .helpers import tree

    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    await deploy_v1(cfg)
    done = await engine_for(cfg).deploy(revision="v2")
    assert done.ok, done.error
    config_file = write_toml(second_machine(cfg, tmp_path), tmp_path / "elsewhere.toml")
    before = {h: tree(tmp_path / h) for h in ("host-1", "host-2")}
    finished = run_cli(config_file, "resume", done.deployment_id)
    assert finished.returncode == 2, finished.stdout + finished.stderr
    assert "nothing to resume" in finished.stderr and "portal-ops deploy" in finished.stderr
    assert f"portal-ops rollback {done.deployment_id}" in finished.stderr
    unknown = run_cli(config_file, "resume", "bp-20990101-000000-abcdef")
    assert unknown.returncode == 2 and "unknown deployment id" in unknown.stderr
    assert "portal-ops history" in unknown.stderr
    assert {h: tree(tmp_path / h) for h in ("host-1", "host-2")} == before


async def test_each_host_record_keeps_its_own_code_backup_and_the_survey_puts_them_together(
    sshd, tmp_path: Path
) -> None:
    """A host's record of a deployment holds the database dump's backup and its own code
    backup, not every host's (that grew with the fleet squared); reading the hosts, a
    rollback from another machine still finds every host's backup."""
    from backend.engine.hoststate import RECORD_DIR, merge
    from backend.engine.rollback import survey

    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo, hosts=3)
    await deploy_v1(cfg)
    result = await engine_for(cfg).deploy(revision="v2")
    assert result.ok, result.error
    for host in ("host-1", "host-2", "host-3"):
        path = tmp_path / host / ".portal-ops" / RECORD_DIR / f"{result.deployment_id}.json"
        backups = (stored_record(path) or {})["backups"]
        assert sorted(backups["hosts"]) == [host], backups
        assert backups["database"]["host"] == "host-1", backups
    engine = engine_for(second_machine(cfg, tmp_path))
    hosts = engine.make_hosts()
    try:
        views = merge(await survey(engine.config, hosts))
    finally:
        await asyncio.gather(*(h.close() for h in hosts.values()))
    view = views[result.deployment_id]
    assert sorted(view.backups["hosts"]) == ["host-1", "host-2", "host-3"]
    assert view.backups["database"]["file"]
