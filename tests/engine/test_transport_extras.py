"""Jump hosts, the Redis lock, operator identity, and the rollback's dry-run plan."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from backend.config import parse_config
from backend.engine.lock import redis_key
from backend.identity import current_operator

from .helpers import current, make_repo, ssh_config
from .test_deploy_ssh import deploy_v1, engine_for


async def test_deploy_through_a_jump_host(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo, hosts=1)
    # the bastion is the same sshd: the host's connection is tunnelled through it
    cfg["hosts"][0]["jump"] = f"{sshd.user}@{sshd.host}:{sshd.port}"
    result = await engine_for(cfg).deploy(revision="v1")
    assert result.ok, result.error
    assert current(tmp_path, "host-1") == result.release


async def test_redis_lock_refuses_a_second_deployment(sshd, fresh_redis, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo, redis={"url": fresh_redis.url})
    await deploy_v1(cfg)
    client = redis.Redis.from_url(fresh_redis.url)
    key = redis_key(parse_config(cfg))
    assert client.get(key) is None  # released after the first deployment
    holder = {"deployment_id": "bp-elsewhere", "operator": "bob@other-bastion", "token": "x"}
    client.set(key, json.dumps(holder))
    result = await engine_for(cfg).deploy(revision="v2")
    assert result.outcome == "failed" and "bob@other-bastion" in (result.error or "")
    # the host locks it took were given back: nothing stays locked by the refused run
    assert not (tmp_path / "host-1" / ".portal-ops" / "lock").exists()
    client.delete(key)
    result = await engine_for(cfg).deploy(revision="v2")
    assert result.ok, result.error


def test_operator_identity_names_the_human_behind_shared_accounts(monkeypatch) -> None:
    monkeypatch.delenv("PORTAL_OPS_OPERATOR", raising=False)
    monkeypatch.setenv("SUDO_USER", "alice")
    monkeypatch.setenv("SSH_CONNECTION", "10.1.2.3 50000 10.0.0.1 22")
    op = current_operator()
    assert "sudo from alice" in op.via and "ssh from 10.1.2.3" in op.via
    monkeypatch.setenv("PORTAL_OPS_OPERATOR", "carol")
    assert current_operator().user == "carol"


async def test_rollback_dry_run_prints_the_plan_and_changes_nothing(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    old = await deploy_v1(cfg)
    deployed = await engine_for(cfg).deploy(revision="v2")
    assert deployed.ok, deployed.error
    db = (tmp_path / "db.txt").read_text()
    plan = await engine_for(cfg).rollback(deployed.deployment_id, "try", dry_run=True)
    text = plan.plan.render()
    for fragment in (f"releases/{old}", "[run:switch]", "[run:migrate_rollback]", "host-2:"):
        assert fragment in text, fragment
    assert current(tmp_path, "host-1") == deployed.release  # nothing moved
    assert (tmp_path / "db.txt").read_text() == db


async def test_cli_deploy_publishes_its_events_for_remote_watchers(
    sshd, fresh_redis, tmp_path: Path
) -> None:
    import subprocess
    import sys

    from backend.demo.sandbox import dump_toml
    from backend.feed import stream_key

    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo, hosts=1, redis={"url": fresh_redis.url})
    config_file = tmp_path / "portal-ops.toml"
    config_file.write_text(dump_toml(cfg))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tui.cli",
            "deploy",
            "--revision",
            "v1",
            "--config",
            str(config_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    entries = redis.Redis.from_url(fresh_redis.url).xrange(stream_key(), "-", "+")
    text = b"\n".join(b" ".join(v for v in fields.values()) for _, fields in entries)
    assert b"deployment.started" in text and b"deployment.finished" in text
