"""Stop spreading: a host that fails its switch stops its batch's remaining switches, and
``max_fail_percentage`` counts the hosts lost in phase 4 (code) and phase 6 (switch)
together. Real sshd, five host trees; a host is made to fail by a marker file its
``install`` (phase 4) looks for, or one naming the VERSION its ``reload`` (phase 6) fails
on (so the rollback's reload of the previous release works)."""

from __future__ import annotations

from pathlib import Path

from backend.config import parse_config
from backend.engine import Engine
from backend.events import Kind
from backend.journal import Journal
from tests.engine.helpers import current, make_repo, ssh_config

HOSTS = [f"host-{i}" for i in range(1, 6)]


def engine_for(cfg: dict) -> Engine:
    config = parse_config(cfg)
    return Engine(config, journal=Journal(Path(config.state.dir) / "journal.db"))


def five_hosts(sshd, tmp_path: Path, **rollout) -> dict:
    cfg = ssh_config(sshd, tmp_path, make_repo(tmp_path), hosts=5)
    cfg["commands"] = {
        "install": "test -f VERSION && test ! -e {{deploy_path}}/fail-install",
        "reload": "test ! -e {{deploy_path}}/fail-reload"
        ' || ! grep -qxF "$(cat VERSION)" {{deploy_path}}/fail-reload',
    }
    # one batch of all five, one host at a time: the order is host-1, host-2, ...
    cfg["rollout"] = {"batches": ["100%"], "concurrency": 1, "drain_seconds": 0, **rollout}
    return cfg


def switched_to(engine: Engine, deployment_id: str, release: str) -> list[str]:
    return [
        e.host
        for e in engine.journal.events(deployment_id)
        if e.kind == Kind.HOST_STATE
        and e.data.get("state") == "switched"
        and e.data.get("release") == release
    ]


async def test_a_failed_host_stops_its_batch(sshd, tmp_path: Path) -> None:
    cfg = five_hosts(sshd, tmp_path)
    first = await engine_for(cfg).deploy(revision="v1")
    assert first.ok, first.error
    (tmp_path / "host-2" / "fail-reload").write_text("2\n")
    engine = engine_for(cfg)
    result = await engine.deploy(revision="v2")
    assert result.outcome == "rolled_back", (result.outcome, result.error)
    # hosts 3 to 5 never switched: the failure on host 2 stopped the batch
    assert switched_to(engine, result.deployment_id, result.release) == ["host-1", "host-2"]
    switch = next(p for p in result.phases if p.name == "switch")
    assert "not switched: host-3, host-4, host-5" in switch.detail, switch.detail
    assert [current(tmp_path, n) for n in HOSTS] == [first.release] * 5
    # the rollback says how long users waited for the previous release everywhere
    serving = result.rollback["alarm_to_serving_seconds"]
    assert 0 < serving <= result.rollback["seconds"], result.rollback
    switch_back = next(p for p in result.rollback["phases"] if p["name"] == "rb-switch")
    assert "previous release serving" in switch_back["detail"]


async def test_max_fail_percentage_counts_code_and_switch_failures(sshd, tmp_path: Path) -> None:
    cfg = five_hosts(sshd, tmp_path, max_fail_percentage=40)
    first = await engine_for(cfg).deploy(revision="v1")
    assert first.ok, first.error
    (tmp_path / "host-5" / "fail-install").touch()  # lost in phase 4: 20%
    (tmp_path / "host-2" / "fail-reload").write_text("2\n")  # lost in phase 6: 40% in all, allowed
    engine = engine_for(cfg)
    result = await engine.deploy(revision="v2")
    assert result.outcome == "partial", (result.outcome, result.error)
    assert "host-2" in (result.error or "") and "host-5" in (result.error or "")
    # the host that failed its switch is back on the previous release, the rest went on
    assert [current(tmp_path, n) for n in HOSTS] == [
        result.release,
        first.release,
        result.release,
        result.release,
        first.release,
    ]
    # a third failure would be 60%: over the line, the switch phase fails and rolls back
    # (the portal was mixed before, a partial deployment: the rollback puts each host back
    # on what it served, and says the hosts differ)
    before = [current(tmp_path, n) for n in HOSTS]
    (tmp_path / "host-3" / "fail-reload").write_text("1\n")
    (tmp_path / "host-4" / "fail-reload").write_text("1\n")
    again = await engine_for(cfg).deploy(revision="v1")
    switch = next(p for p in again.phases if p.name == "switch")
    assert switch.status == "failed" and "60% of hosts failed" in switch.detail, switch.detail
    assert "max_fail_percentage 40" in switch.detail
    assert again.outcome != "succeeded" and again.rollback is not None
    assert [current(tmp_path, n) for n in HOSTS] == before
