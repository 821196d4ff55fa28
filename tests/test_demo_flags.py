"""The demo's feature flag, end to end: the real sandbox (its own redis-server, three app
servers, the load balancer), the real engine and the sample portal's FlagClient.

Version 2 introduces ``ui-improvements``: phase 3 creates it off, phase 8 rolls it out
10 -> 50 -> 100 %, each step held a second and gated on every host's /up. The portal
evaluates it per company in-process and counts usage in Redis. When a host's app server
dies during a step, the gate fails and the flag steps back to its last healthy step (then
the automatic rollback takes it off). Without Redis, the flag lives in the store only and
the portal says it evaluates none.

The phase 9 monitoring window is set to 0 here: what is tested is phases 3 and 8.
Every process started is stopped in the fixture's teardown, and checked gone.
"""

from __future__ import annotations

import asyncio
import copy
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.demo.run import DemoSession, bring_up
from backend.demo.sandbox import RELEASE_FLAG, Sandbox, find_redis_server, pid_alive
from backend.engine import Engine
from backend.events import Event, Kind
from backend.flags import FlagService, bucket
from tests.conftest import service_missing

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

COMPANIES = ["1", "2", "3", "4"]  # the sample portal's companies (migration 001)


def need_redis() -> None:
    if find_redis_server() is None:
        service_missing("redis-server not found: the demo sandbox runs its flags store-only")


@pytest.fixture
def roots(tmp_path: Path) -> Iterator[Callable[[], Path]]:
    """Sandbox roots under tmp_path; teardown stops each sandbox and checks nothing survived
    (even when bringing it up failed half-way)."""
    made: list[Path] = []

    def new() -> Path:
        made.append(tmp_path / f"demo-{len(made)}")
        return made[-1]

    yield new
    leftovers: list[int] = []
    for root in made:
        if not (root / "sandbox.json").exists():
            continue
        box = Sandbox.load(root)
        seen = box.pids()
        box.stop()
        leftovers += [p for p in seen if pid_alive(p)]
    assert not leftovers, f"processes survived stop(): {leftovers}"


def engine_for(session: DemoSession) -> Engine:
    """The demo's engine for version 2, without the monitoring window of phase 9."""
    config = copy.deepcopy(session.config)
    config.monitor.bake_seconds = 0
    return DemoSession(session.sandbox, config).engine()


def flag_service(session: DemoSession) -> FlagService:
    config = session.config
    return FlagService(
        Path(config.state.dir or session.sandbox.state_dir) / "journal.db",
        config.redis.url,
        config.redis.prefix,
    )


def flag_changes(engine: Engine, deployment_id: str) -> list[dict[str, Any]]:
    return [
        e.data
        for e in engine.journal.events(deployment_id)
        if e.kind == Kind.FLAG_CHANGED and e.data.get("flag") == RELEASE_FLAG
    ]


def rollout_lines(events: list[Event]) -> list[str]:
    return [
        e.data["line"]
        for e in events
        if e.kind == Kind.STEP_OUTPUT and e.data.get("stream") == "flags"
    ]


async def companies(client: httpx.AsyncClient) -> tuple[str, dict[str, dict[str, Any]]]:
    """One /api/companies answer through the front: (backend, rows by company id)."""
    answer = await client.get("/api/companies")
    assert answer.status_code == 200, answer.text
    return answer.headers["x-backend"], {str(r["id"]): r for r in answer.json()}


async def test_v2_rolls_ui_improvements_out_to_every_company(roots: Callable[[], Path]) -> None:
    need_redis()
    session = await bring_up(roots(), redis=True)
    box = session.sandbox
    assert session.config.redis.url == box.redis_url and box.redis_pid
    assert session.config.flags.release_flags == [RELEASE_FLAG]
    at_half: dict[str, dict[str, dict[str, Any]]] = {}  # host -> rows while 50 % was held
    on_at_half = {c for c in COMPANIES if bucket(RELEASE_FLAG, c) <= 50}
    tasks: list[asyncio.Task[None]] = []

    async def watch_half() -> None:
        """While 50 % is held, every host serves it: the buckets <= 50 on (SPLIT), the rest off."""
        async with httpx.AsyncClient(timeout=5) as client:
            for host in box.hosts:
                rows: dict[str, dict[str, Any]] = {}
                for _ in range(40):  # the change reaches the apps in milliseconds
                    answer = await client.get(f"{host.url}/api/companies")
                    rows = {str(r["id"]): r for r in answer.json()}
                    if {c for c, r in rows.items() if r["ui_improvements"]} == on_at_half:
                        break
                    await asyncio.sleep(0.01)
                at_half[host.name] = rows

    events: list[Event] = []

    def on_event(event: Event) -> None:
        events.append(event)
        if event.kind == Kind.STEP_OUTPUT and event.data.get("line", "").startswith(
            f"{RELEASE_FLAG} 50% started"
        ):
            tasks.append(asyncio.get_running_loop().create_task(watch_half()))

    engine = engine_for(session)
    engine.bus.subscribe(on_event)
    result = await engine.deploy(revision="v2")
    assert result.outcome == "succeeded", result.error
    await asyncio.gather(*tasks)
    phases = {p.name: p for p in result.phases}
    assert phases["flags-prepare"].status == "succeeded"
    assert phases["rollout"].status == "succeeded"
    assert f"rolled out {RELEASE_FLAG} 100% (gated on health)" in phases["rollout"].detail
    lines = rollout_lines(events)
    for pct in (10, 50, 100):
        assert any(line.startswith(f"{RELEASE_FLAG} {pct}% passed") for line in lines), lines

    # While 50 % was held, each app already served it (the FlagClient follows Redis).
    assert set(at_half) == {h.name for h in box.hosts}
    for host, rows in at_half.items():
        served = {c for c, r in rows.items() if r["ui_improvements"]}
        assert served == on_at_half, (host, rows)
        assert {r["ui_improvements_reason"] for r in rows.values()} == {"SPLIT"}

    with flag_service(session) as service:
        flag = service.get(RELEASE_FLAG)
        assert (flag.enabled, flag.percentage) == (True, 100)
        assert service.verify().ok  # Redis holds what the store holds

        # Through the front, every host reports it on for every company.
        async with httpx.AsyncClient(base_url=box.url, timeout=5) as client:
            seen: set[str] = set()
            for _ in range(6):
                backend, rows = await companies(client)
                seen.add(backend)
                assert sorted(rows) == COMPANIES
                for company, row in rows.items():
                    assert row["ui_improvements"] is True, (backend, company, row)
                    assert (row["ui_improvements_reason"], row["ui_improvements_rule"]) == (
                        "STATIC",
                        "percentage-100",
                    )
            assert seen == {h.name for h in box.hosts}
            home = await client.get("/", params={"company": "3"})
            assert "New UI</strong> for company 3" in home.text
            header = await client.get("/", headers={"X-Company": "2"})
            assert "New UI</strong> for company 2" in header.text

        # The apps' usage counts reach Redis (flushed every second): feature stats sees them.
        stats = service.stats(RELEASE_FLAG)
        for _ in range(100):
            stats = service.stats(RELEASE_FLAG)
            if stats.yes >= 6 * 4 and {c for c, _, _ in stats.companies} >= set(COMPANIES):
                break
            await asyncio.sleep(0.1)
        assert stats.yes >= 6 * 4 and stats.total > 0, stats.to_json()
        assert {c for c, _, _ in stats.companies} >= set(COMPANIES), stats.to_json()
        assert service.list_flags()[0].evaluations_last_hour == stats.total

    changes = flag_changes(engine, result.deployment_id)
    assert [c["change"] for c in changes] == [
        "create",
        "rollout-step",
        "rollout-step",
        "rollout-step",
    ]
    assert [c["after"]["percentage"] for c in changes[1:]] == [10, 50, 100]
    assert all(c["published"] is True for c in changes)


async def test_failed_health_gate_steps_the_flag_back(roots: Callable[[], Path]) -> None:
    """host-3's app server dies while 50 % is held: the gate (every host's /up) fails, the
    flag goes back to 10 % (its last healthy step), phase 8 fails and the deployment is
    rolled back, which takes the flag off and brings host-3 back on version 1."""
    need_redis()
    session = await bring_up(roots(), redis=True)
    box = session.sandbox
    victim = box.host("host-3")
    killed: list[int] = []
    at_step_back: dict[str, Any] = {}
    events: list[Event] = []
    service = flag_service(session)

    def on_event(event: Event) -> None:
        events.append(event)
        line = event.data.get("line", "") if event.kind == Kind.STEP_OUTPUT else ""
        if line.startswith(f"{RELEASE_FLAG} 50% started") and not killed:
            pid = box.app_pids()[victim.name]
            assert pid is not None
            os.kill(pid, signal.SIGKILL)  # a crash: the port closes at once
            killed.append(pid)
        if event.kind == Kind.FLAG_CHANGED and event.data.get("change") == "rollout-step-back":
            flag = service.get(RELEASE_FLAG)  # the store, right after the step back
            at_step_back["store"] = (flag.enabled, flag.percentage)
            at_step_back["redis"] = service.verify().ok

    engine = engine_for(session)
    engine.bus.subscribe(on_event)
    try:
        result = await engine.deploy(revision="v2")
        assert killed, "the rollout never reached 50%"
        assert result.outcome == "rolled_back", result.error
        assert result.rollback and result.rollback["outcome"] == "succeeded"
        rollout = next(p for p in result.phases if p.name == "rollout")
        assert rollout.status == "failed"
        assert f"{RELEASE_FLAG}: stepped-back: health gate failed at 50%" in rollout.detail
        assert f"{victim.health_url}: ConnectError" in rollout.detail

        lines = rollout_lines(events)
        assert any(line.startswith(f"{RELEASE_FLAG} 10% passed") for line in lines), lines
        assert any(line.startswith(f"{RELEASE_FLAG} 50% failed") for line in lines), lines
        assert f"{RELEASE_FLAG} 10% stepped-back: back to 10%" in lines
        assert not any(line.startswith(f"{RELEASE_FLAG} 100%") for line in lines), lines

        # The store (and Redis) held the last healthy step when the rollout stepped back.
        assert at_step_back == {"store": (True, 10), "redis": True}

        # The journal's flag.changed events: created off, 10, 50, back to 10, then off.
        changes = flag_changes(engine, result.deployment_id)
        assert [c["change"] for c in changes] == [
            "create",
            "rollout-step",
            "rollout-step",
            "rollout-step-back",
            "disable",
        ]
        states = [(c["after"]["enabled"], c["after"]["percentage"]) for c in changes]
        assert states[1:] == [(True, 10), (True, 50), (True, 10), (False, 10)]
        back = changes[3]["reason"]
        assert "health gate failed at 50%" in back and victim.health_url in back
        assert "rollback" in changes[4]["reason"]
        assert all(c["published"] is True for c in changes)

        # The rollback's end state: off in the store and in Redis, the 10 % kept for later.
        flag = service.get(RELEASE_FLAG)
        assert (flag.enabled, flag.percentage) == (False, 10)
        assert service.verify().ok
        history = [e.action for e in service.history(RELEASE_FLAG)]
        assert "rollout-step-back" in history

        # Every host is back on version 1 and serving, host-3 restarted by the rollback.
        releases = {h.name: box.current_release(h.name) for h in box.hosts}
        assert result.release not in releases.values() and len(set(releases.values())) == 1
        pids = box.app_pids()
        assert all(pids.values()) and pids[victim.name] != killed[0]
        async with httpx.AsyncClient(base_url=box.url, timeout=5) as client:
            for _ in range(3):
                up = await client.get("/version")
                assert up.status_code == 200 and up.json()["version"] == "1"
    finally:
        service.close()


async def test_without_redis_flags_run_store_only(roots: Callable[[], Path]) -> None:
    """No redis-server: phases 3 and 8 still run (the store, no publication) and the
    portal says, on /, that it evaluates no flags."""
    session = await bring_up(roots(), redis=False)
    box = session.sandbox
    assert box.redis_url is None and box.redis_pid is None
    assert session.config.redis.url is None
    assert session.config.flags.release_flags == [RELEASE_FLAG]
    assert all('REDIS_URL=""\n' in h.env_file.read_text() for h in box.hosts)

    engine = engine_for(session)
    result = await engine.deploy(revision="v2")
    assert result.outcome == "succeeded", result.error
    phases = {p.name: p for p in result.phases}
    assert phases["flags-prepare"].status == "succeeded"
    assert phases["rollout"].status == "succeeded"
    assert f"rolled out {RELEASE_FLAG} 100%" in phases["rollout"].detail
    with flag_service(session) as service:
        flag = service.get(RELEASE_FLAG)
        assert (flag.enabled, flag.percentage) == (True, 100)
    changes = flag_changes(engine, result.deployment_id)
    assert [c["after"]["percentage"] for c in changes[1:]] == [10, 50, 100]
    assert all(c["published"] is None for c in changes)  # nothing to publish to

    async with httpx.AsyncClient(base_url=box.url, timeout=5) as client:
        for _ in range(3):
            home = await client.get("/", params={"company": "3"})
            assert home.status_code == 200 and "v2" in home.text
            assert "Feature flags: not evaluated (no REDIS_URL" in home.text
            assert "New UI" not in home.text
            _, rows = await companies(client)
            assert sorted(rows) == COMPANIES
            assert not any("ui_improvements" in row for row in rows.values())
            status = (await client.get("/api/flags")).json()
            assert status["evaluated"] is False and status["client"] is None
