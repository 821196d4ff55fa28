"""Batch analysis end to end: real haproxy, real app processes on loopback, a bounded load
generator. A release whose pages fail while its health URL passes is stopped at the canary:
only the canary ever served it, failed user requests are counted and bounded, and every
host ends on the previous release."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.config import parse_config
from backend.engine import Engine
from backend.events import Kind
from backend.journal import Journal
from tests.engine.helpers import current
from tests.fixtures.loadgen import LoadGenerator
from tests.traffic_stack import make_app_repo, seed_release, stack, stack_config

__all__ = ["stack"]


def engine_for(cfg: dict) -> Engine:
    config = parse_config(cfg)
    return Engine(config, journal=Journal(Path(config.state.dir) / "journal.db"))


def analysed(sshd, stack, repo) -> dict:
    cfg = stack_config(sshd, stack, repo)
    cfg["rollout"]["analysis_seconds"] = 2
    for host in cfg["hosts"]:
        host["base_url"] = stack.apps[host["name"]].url
    cfg["validation"] = {**cfg["validation"], "smoke_pages": ["/"]}
    cfg["portal"]["public_url"] = stack.haproxy.url
    return cfg


@pytest.mark.slow
async def test_bad_pages_with_a_passing_health_url_stop_at_the_canary(
    sshd, stack, tmp_path: Path
) -> None:
    repo = make_app_repo(tmp_path, {"pages": 500, "health": 200})
    cfg = analysed(sshd, stack, repo)
    first = await engine_for(cfg).deploy(revision="v1")
    assert first.ok, first.error
    v1 = first.release
    engine = engine_for(cfg)
    with LoadGenerator(stack.haproxy.url, rate=40, workers=4) as load:
        result = await engine.deploy(revision="v2")
    v2 = result.release
    assert result.outcome == "rolled_back", (
        result.outcome,
        result.error,
        [(p["name"], p["detail"]) for p in (result.rollback or {}).get("phases", [])],
    )
    serving = result.rollback["alarm_to_serving_seconds"]  # the canary back on v1
    assert 0 < serving <= result.rollback["seconds"], result.rollback
    switch = next(p for p in result.phases if p.name == "switch")
    assert switch.status == "failed" and "batch 1/2 failed its analysis" in switch.detail
    # every host ends on the previous release
    assert [current(stack.root, n) for n in stack.names] == [v1] * 3
    # at most the canary ever served the bad release
    assert load.releases.get(v2, 0) <= load.total
    assert set(load.failed_by_release) <= {v2}
    assert {n for n in stack.names if (stack.root / n / "releases" / v2).exists()} >= {"host-1"}
    events = engine.journal.events(result.deployment_id)
    switched = {
        e.host
        for e in events
        if e.kind == Kind.HOST_STATE
        and e.data.get("state") == "switched"
        and e.data.get("release") == v2
    }
    assert switched == {"host-1"}
    # failed user requests are counted and bounded: one host of three, for the analysis hold
    assert load.total > 0
    assert load.failed <= load.total // 2, (load.failed, load.total, dict(load.statuses))
    analysis = [e.data["line"] for e in events if e.data.get("step") == "analysis"]
    assert analysis and "answered 500" in analysis[-1]


async def test_a_good_release_passes_every_batch_analysis(sshd, stack, tmp_path: Path) -> None:
    repo = make_app_repo(tmp_path, {"pages": 200, "health": 200})
    cfg = analysed(sshd, stack, repo)
    # Q05 and Q06 are judged against their own measure before the switch: the users' load
    # and the machine's do not roll a good release back
    engine = engine_for(cfg)
    with LoadGenerator(stack.haproxy.url, rate=40, workers=4) as load:
        result = await engine.deploy(revision="v2")
    assert result.ok, result.error
    assert [current(stack.root, n) for n in stack.names] == [result.release] * 3
    assert load.failed == 0, dict(load.statuses)


async def test_real_traffic_stops_a_canary_the_probes_cannot_see(
    sshd, stack, tmp_path: Path
) -> None:
    """No smoke pages and no per-host base URL: only the users' requests through HAProxy
    show that the new release's pages fail. The switched host's 5xx rate against the hosts
    not yet switched stops the rollout at the canary."""
    repo = make_app_repo(tmp_path, {"pages": 500, "health": 200})
    cfg = stack_config(sshd, stack, repo)
    first = await engine_for(cfg).deploy(revision="v1")
    assert first.ok, first.error
    cfg["rollout"] = {**cfg["rollout"], "analysis_seconds": 3, "analysis_min_requests": 10}
    engine = engine_for(cfg)
    with LoadGenerator(stack.haproxy.url, rate=60, workers=4) as load:
        result = await engine.deploy(revision="v2")
    switch = next(p for p in result.phases if p.name == "switch")
    assert switch.status == "failed", switch.detail
    assert "batch 1/2 failed its analysis: real traffic: error_rate" in switch.detail
    assert [current(stack.root, n) for n in stack.names] == [first.release] * 3
    assert set(load.failed_by_release) <= {result.release}
    events = engine.journal.events(result.deployment_id)
    rounds = [e.data for e in events if e.data.get("step") == "analysis"]
    last = rounds[-1]
    assert last["final"] and not last["ok"]
    traffic = last["traffic"]
    assert traffic["switched"]["hosts"] == ["host-1"]
    assert traffic["not_switched"]["hosts"] == ["host-2", "host-3"]
    assert traffic["switched"]["errors"] > 0 and traffic["not_switched"]["errors"] == 0
    verdicts = {j["metric"]: j["verdict"] for j in traffic["judgments"]}
    assert verdicts["error_rate"] == "bad" and verdicts["throughput_share"] == "ok"


async def test_a_healthy_release_on_a_slow_machine_passes_its_latency_check(
    sshd, stack, tmp_path: Path
) -> None:
    """Both releases answer in ~300 ms (a loaded machine): against the absolute line
    (fail above 200 ms) Q05 would fail the new release; against the baseline measured
    before the switch on the old release, it passes."""
    slow = {"pages": 200, "health": 200, "delay_ms": 300}
    repo = make_app_repo(tmp_path, slow, v1=slow)
    cfg = stack_config(sshd, stack, repo)
    cfg["portal"]["public_url"] = stack.haproxy.url
    cfg["validation"] = {
        **cfg["validation"],
        "latency_samples": 4,
        "latency_warn_ms": 100,
        "latency_fail_ms": 200,
        "error_rate_samples": 10,
    }
    for name in stack.names:  # the old release, live by hand (a first deployment would
        seed_release(stack.root, name, "r1", slow)  # measure its baseline on no app at all)
    engine = engine_for(cfg)
    result = await engine.deploy(revision="v2")
    assert result.ok, result.error
    events = engine.journal.events(result.deployment_id)
    baseline = next(e.data["web_baseline"] for e in events if e.data.get("step") == "baseline")
    assert baseline["Q05"] >= 250, baseline
    q05 = next(
        e.data
        for e in events
        if e.kind == Kind.CHECK_RESULT and e.data["id"] == "Q05" and e.phase == "validate-post"
    )
    assert q05["status"] == "pass" and "baseline before the switch" in q05["threshold"], q05
    assert q05["value"] > cfg["validation"]["latency_fail_ms"]


async def test_a_batch_with_no_host_left_to_compare_to_is_judged_against_before(
    sshd, stack, tmp_path: Path
) -> None:
    """One batch of every host: nobody is left on the old release, so the switched hosts'
    traffic is compared with their own HAProxy counters from before the switch."""
    repo = make_app_repo(tmp_path, {"pages": 500, "health": 200})
    cfg = stack_config(sshd, stack, repo)
    first = await engine_for(cfg).deploy(revision="v1")
    assert first.ok, first.error
    cfg["rollout"] = {
        **cfg["rollout"],
        "batches": ["100%"],
        "analysis_seconds": 3,
        "analysis_min_requests": 10,
    }
    engine = engine_for(cfg)
    with LoadGenerator(stack.haproxy.url, rate=60, workers=4):
        result = await engine.deploy(revision="v2")
    switch = next(p for p in result.phases if p.name == "switch")
    assert "batch 1/1 failed its analysis: real traffic: error_rate" in switch.detail
    assert [current(stack.root, n) for n in stack.names] == [first.release] * 3
    events = engine.journal.events(result.deployment_id)
    last = [e.data for e in events if e.data.get("step") == "analysis"][-1]
    assert last["traffic"]["not_switched"]["hosts"] == []
    judged = {j["metric"]: j for j in last["traffic"]["judgments"]}
    assert judged["error_rate"]["verdict"] == "bad"
    assert judged["error_rate"]["reference"] == 0.0  # the same hosts before the switch
