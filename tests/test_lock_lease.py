"""The deploy lock's lease against real parts: OpenSSH on loopback, redis-server, the CLI.

Exactly one of many deploys started together runs; a stopped heartbeat is stale, a live one
is not; Redis locks expire and are released compare-and-delete; a run that lost its lock
stops (fencing)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from backend.config import parse_config
from backend.demo.sandbox import dump_toml
from backend.engine import Engine
from backend.engine.lock import redis_acquire, redis_key
from backend.journal import Journal
from tests.engine.helpers import make_repo, ssh_config

ROOT = Path(__file__).resolve().parent.parent
FAST_LEASE = {"heartbeat_seconds": 0.5, "lease_seconds": 5}  # slack for a loaded machine


def engine_for(cfg: dict) -> Engine:
    config = parse_config(cfg)
    return Engine(config, journal=Journal(Path(config.state.dir) / "journal.db"))


def write_config(cfg: dict, root: Path) -> Path:
    path = root / "portal-ops.toml"
    path.write_text(dump_toml(cfg))
    return path


def cli(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args, "--config", str(config)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def wait_for(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
async def test_ten_deploys_at_once_exactly_one_runs_five_rounds(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    cfg["commands"]["install"] = "sleep 2"  # the winner holds the lock while the rest try
    for round_ in range(5):
        engines = [engine_for(cfg) for _ in range(10)]
        results = await asyncio.gather(
            *(  # odd rounds with pre-deployment validation: racing losers must not fail it
                e.deploy(revision="v2" if round_ % 2 else "v1", skip_validation=round_ % 2 == 0)
                for e in engines
            )
        )
        ran = [r for r in results if r.ok]
        refused = [r for r in results if not r.ok]
        assert len(ran) == 1, [(r.outcome, r.error) for r in results]
        winner = ran[0].deployment_id
        for r in refused:
            error = r.error or ""
            assert "deploy lock is held" in error, error
            assert winner in error and "test-operator" in error, error
            assert " on " in error and "(live)" in error, error
            assert "unfinished" not in error and "roll" not in error.lower(), error


def start_deploy(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "deploy", "--skip-validation", "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def release(go: Path, proc: subprocess.Popen[str]) -> None:
    """Let a deploy held in its install go, and never leave it running after a test."""
    go.touch()
    if proc.poll() is None:
        proc.kill()


def owner(root: Path, host: str = "host-1") -> dict | None:
    path = root / host / ".portal-ops" / "lock" / "owner.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def test_unlock_refuses_a_live_holder_and_fencing_stops_it_once_forced(
    sshd, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo, lock=FAST_LEASE)
    go = tmp_path / "go"  # phase 4 waits for it: the unlock happens while the run lives
    cfg["commands"]["install"] = f"while [ ! -e {go} ]; do sleep 0.1; done"
    config = write_config(cfg, tmp_path)
    proc = start_deploy(config)
    try:
        wait_for(lambda: owner(tmp_path) is not None, what="the deploy to take its lock")
        time.sleep(FAST_LEASE["lease_seconds"] * 1.5)  # older than a lease: still renewed
        deployment_id = owner(tmp_path)["deployment_id"]  # type: ignore[index]

        refused = cli(config, "unlock", "--yes")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "LIVE" in refused.stderr and "(live)" in refused.stdout
        assert owner(tmp_path) is not None

        wrong = cli(config, "unlock", "--force", stdin="bp-wrong\n")
        assert wrong.returncode == 1 and "Left in place" in wrong.stdout
        assert owner(tmp_path) is not None

        forced = cli(config, "unlock", "--force", stdin=deployment_id + "\n")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert "Lock removed from host-1, host-2" in forced.stdout
        go.write_text("")  # its next script is fenced on the host (heartbeat or not)
        out, _ = proc.communicate(timeout=120)
    finally:
        release(go, proc)
    # fencing: the run noticed its lock was gone and stopped before its next change. Where
    # the heartbeat noticed decides the exit code: before phase 5 nothing changed (1); after
    # the migrations its own rollback is fenced too, and a person is needed (4)
    assert proc.returncode in (1, 4), (proc.returncode, out[-600:])
    assert "no longer ours" in out, out
    assert not (tmp_path / "host-1" / "current").exists(), "a fenced run switched a host"


def test_a_forced_unlock_fences_the_next_script_on_the_host_not_at_the_next_heartbeat(
    sshd, tmp_path: Path
) -> None:
    """The host checks the lock token as the first step of every mutating script: a run
    whose lock was removed stops at its very next change, whatever its heartbeat."""
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo, lock={"heartbeat_seconds": 60, "lease_seconds": 180})
    go = tmp_path / "go"
    cfg["commands"]["install"] = f"while [ ! -e {go} ]; do sleep 0.05; done"
    config = write_config(cfg, tmp_path)
    proc = start_deploy(config)
    try:
        wait_for(lambda: owner(tmp_path) is not None, what="the deploy to take its lock")
        deployment_id = owner(tmp_path)["deployment_id"]  # type: ignore[index]
        forced = cli(config, "unlock", "--force", stdin=deployment_id + "\n")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        go.write_text("")  # at once: no heartbeat has beaten since the unlock
        out, _ = proc.communicate(timeout=120)
    finally:
        release(go, proc)
    assert proc.returncode in (1, 4), (proc.returncode, out[-600:])
    assert "no longer ours" in out, out[-1500:]
    for host in ("host-1", "host-2"):
        assert not (tmp_path / host / "current").exists(), f"a fenced run switched {host}"


def test_a_killed_run_leaves_a_stale_lock_that_unlock_clears_with_a_yes(
    sshd, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo, lock=FAST_LEASE)
    cfg["commands"]["install"] = "sleep 30"
    config = write_config(cfg, tmp_path)
    proc = start_deploy(config)
    wait_for(lambda: owner(tmp_path) is not None, what="the deploy to take its lock")
    proc.kill()  # SIGKILL: no release, no more heartbeats
    proc.wait(timeout=30)
    time.sleep(FAST_LEASE["lease_seconds"] + 1.1)  # the lease runs out (host clock: 1 s steps)
    shown = cli(config, "unlock", stdin="n\n")
    assert shown.returncode == 1
    assert "STALE" in shown.stdout and "test-operator" in shown.stdout, shown.stdout
    done = cli(config, "unlock", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert owner(tmp_path) is None and owner(tmp_path, "host-2") is None


def test_redis_lock_has_a_ttl_and_a_stale_one_is_shown_and_cleared(
    sshd, redis_server, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo, lock=FAST_LEASE, redis={"url": redis_server.url})
    config = parse_config(cfg)
    client = redis.Redis.from_url(redis_server.url)
    key = redis_key(config)
    client.delete(key)
    # a crashed run's Redis lock: it expires by itself once the lease runs out
    assert redis_acquire(config, {"token": "t1", "deployment_id": "bp-crashed"}) is None
    assert 0 < client.pttl(key) <= 5000
    wait_for(lambda: client.get(key) is None, timeout=10, what="the Redis lock to expire")

    # one left without a TTL (the old protocol): shown as stale, cleared by unlock
    client.set(key, json.dumps({"token": "t2", "deployment_id": "bp-old", "operator": "bob"}))
    file = write_config(cfg, tmp_path)
    refused = asyncio.run(engine_for(cfg).deploy(revision="v1", skip_validation=True))
    assert not refused.ok and "held on redis by bob" in (refused.error or "")
    shown = cli(file, "unlock", stdin="n\n")
    assert "held on redis by bob" in shown.stdout and "STALE" in shown.stdout, shown.stdout
    done = cli(file, "unlock", "--yes")
    assert done.returncode == 0 and "redis" in done.stdout, done.stdout + done.stderr
    assert client.get(key) is None

    # a run renews its Redis TTL and releases it compare-and-delete
    result = asyncio.run(engine_for(cfg).deploy(revision="v1", skip_validation=True))
    assert result.ok, result.error
    assert client.get(key) is None


def test_redis_release_never_removes_another_holders_lock(redis_server, tmp_path: Path) -> None:
    from backend.engine.lock import redis_release, redis_renew

    cfg = {
        "portal": {"repository": "r", "deploy_path": "/srv/p", "name": "cad"},
        "hosts": [{"name": "h", "address": "127.0.0.1"}],
        "redis": {"url": redis_server.url},
        "lock": {"heartbeat_seconds": 1, "lease_seconds": 30},
    }
    config = parse_config(cfg)
    client = redis.Redis.from_url(redis_server.url)
    client.delete(redis_key(config))
    assert redis_acquire(config, {"token": "mine"}) is None
    assert redis_acquire(config, {"token": "theirs"})["token"] == "mine"  # type: ignore[index]
    assert not redis_release(config, "theirs") and client.get(redis_key(config))
    assert not redis_renew(config, "theirs")
    assert redis_renew(config, "mine")
    assert redis_release(config, "mine") and client.get(redis_key(config)) is None


def beating_fast_with_redis(sshd, redis_server, tmp_path: Path) -> dict:
    """A config whose lease beats every 0.1 s, with a Redis lock of this test's own."""
    return ssh_config(
        sshd,
        tmp_path,
        make_repo(tmp_path),
        lock={"heartbeat_seconds": 0.1, "lease_seconds": 5},
        redis={"url": redis_server.url, "prefix": f"rb-lease-{tmp_path.name}"},
    )


async def test_a_rollback_holds_the_redis_lock_for_as_long_as_it_runs(
    sshd, redis_server, tmp_path: Path
) -> None:
    """A rollback of a finished deployment takes the Redis lock itself (the deployment gave
    it back) and keeps it through every heartbeat: a phase slower than one heartbeat does
    not find its lease "lost" and leave the rollback partial."""
    cfg = beating_fast_with_redis(sshd, redis_server, tmp_path)
    config = parse_config(cfg)
    key = redis_key(config)
    seen = tmp_path / "redis-lock-during-rollback.json"
    first = await engine_for(cfg).deploy(revision="v1", skip_validation=True)
    second = await engine_for(cfg).deploy(revision="v2", skip_validation=True)
    assert first.ok and second.ok, (first.error, second.error)
    # a slow database phase: several heartbeats pass while it runs, then it reads the lock
    read = f"import redis; print(redis.Redis.from_url({redis_server.url!r}).get({key!r}).decode())"
    cfg["hooks"] = {
        "before": [
            {"phase": "rb-database", "run": f"sleep 0.5; {sys.executable} -c {_sq(read)} > {seen}"}
        ]
    }
    engine = engine_for(cfg)
    result = await engine.rollback(second.deployment_id, reason="test: slow phase")
    failed = [(p.name, p.detail) for p in result.phases if p.status == "failed"]
    assert result.outcome == "succeeded", (result.outcome, failed)
    holder = json.loads(seen.read_text())
    assert holder["deployment_id"] == second.deployment_id, holder
    assert redis.Redis.from_url(redis_server.url).get(key) is None  # given back at the end


def _sq(text: str) -> str:
    import shlex

    return shlex.quote(text)


async def test_a_redis_lock_lost_with_its_data_is_set_again_by_the_running_deploy(
    sshd, redis_server, tmp_path: Path
) -> None:
    """Redis restarted empty (or the key expired while the run was stalled): the hosts still
    hold the run's lock, so the next heartbeat sets the Redis lock again instead of
    stopping a healthy deployment; another run's key would still mean "lost"."""
    cfg = beating_fast_with_redis(sshd, redis_server, tmp_path)
    key = redis_key(parse_config(cfg))
    seen = tmp_path / "redis-lock-after-flush.json"
    gone = f"import redis; redis.Redis.from_url({redis_server.url!r}).delete({key!r})"
    read = f"import redis; print(redis.Redis.from_url({redis_server.url!r}).get({key!r}).decode())"
    cfg["hooks"] = {
        "before": [{"phase": "switch", "run": f"{sys.executable} -c {_sq(gone)}"}],
        "after": [
            {"phase": "switch", "run": f"sleep 0.5; {sys.executable} -c {_sq(read)} > {seen}"}
        ],
    }
    result = await engine_for(cfg).deploy(revision="v1", skip_validation=True)
    assert result.ok, result.error
    assert json.loads(seen.read_text())["deployment_id"] == result.deployment_id
    assert redis.Redis.from_url(redis_server.url).get(key) is None  # given back at the end
