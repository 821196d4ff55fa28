"""HAProxy as a first-class load balancer, against a real haproxy and real app processes:
a drain waits until the server's sessions are gone, every runtime API answer is checked,
a misnamed backend or server stops the deployment in phase 1 with nothing switched, and
the ``command`` balancer fails a step that exits non-zero or complains on stderr."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from backend.config import ConfigError, parse_config
from backend.engine import Engine
from backend.engine.traffic import perform, preflight, run_lb_action, wait_drained
from backend.events import Kind
from backend.journal import Journal
from tests.engine.helpers import current
from tests.traffic_stack import GOOD, make_app_repo, seed_release, stack, stack_config, start_stack

__all__ = ["stack"]  # the fixture, imported for pytest


def lb_config(stack, **lb) -> object:
    cfg = {
        "portal": {"repository": "x", "deploy_path": str(stack.root / "host-1")},
        "hosts": [{"name": n, "address": "127.0.0.1"} for n in stack.names],
        "load_balancer": {
            "kind": "haproxy",
            "socket": stack.haproxy.socket,
            "backend": "portal",
            "drain_timeout": 10,
            **lb,
        },
    }
    return parse_config(cfg)


def engine_for(cfg: dict) -> Engine:
    config = parse_config(cfg)
    return Engine(config, journal=Journal(Path(config.state.dir) / "journal.db"))


@pytest.fixture
def one_host(tmp_path: Path):
    s = start_stack(tmp_path / "portal", hosts=1)
    yield s
    s.stop()


async def test_drain_waits_until_the_servers_sessions_are_gone(one_host) -> None:
    seed_release(one_host.root, "host-1", "r1", {**GOOD, "delay_ms": 1500})
    config = lb_config(one_host)
    host = config.host("host-1")
    finished: list[float] = []

    def slow_request() -> None:
        response = httpx.get(one_host.haproxy.url + "/slow", timeout=10)
        assert response.status_code == 200
        finished.append(time.monotonic())

    thread = threading.Thread(target=slow_request)
    thread.start()
    deadline = time.monotonic() + 5
    while one_host.haproxy.server_field("host-1", "scur") != "1":
        assert time.monotonic() < deadline, "the slow request never reached the server"
        await asyncio.sleep(0.02)
    assert (await perform(config, host, "drain")).ok
    assert one_host.haproxy.server_field("host-1", "status") == "DRAIN"
    drained = await wait_drained(config, host)
    done = time.monotonic()
    thread.join()
    assert drained.ok, drained.detail
    # it returned only once the in-flight request had been answered, not after a fixed sleep
    assert finished and finished[0] <= done
    assert one_host.haproxy.server_field("host-1", "scur") == "0"
    assert (await perform(config, host, "enable")).ok
    assert one_host.haproxy.server_field("host-1", "status") != "DRAIN"


async def test_drain_wait_is_bounded_by_drain_timeout(one_host) -> None:
    seed_release(one_host.root, "host-1", "r1", {**GOOD, "delay_ms": 4000})
    config = lb_config(one_host, drain_timeout=0.5)
    host = config.host("host-1")
    thread = threading.Thread(
        target=lambda: httpx.get(one_host.haproxy.url + "/slow", timeout=10), daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 5
    while one_host.haproxy.server_field("host-1", "scur") != "1":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await perform(config, host, "drain")
    started = time.monotonic()
    drained = await wait_drained(config, host)
    assert not drained.ok and "still had 1 session(s)" in drained.detail
    assert time.monotonic() - started < 2.5
    thread.join()


async def test_every_runtime_api_answer_is_checked(stack) -> None:
    seed = lb_config(stack)
    for name in stack.names:
        seed_release(stack.root, name, "r1", GOOD)
    bad_server = replace(seed, hosts=[replace(seed.hosts[0], backend_name="web-9")])
    result = await perform(bad_server, bad_server.hosts[0], "drain")
    assert not result.ok and "No such server." in result.detail
    bad_backend = lb_config(stack, backend="portl")
    result = await perform(bad_backend, bad_backend.hosts[0], "drain")
    assert not result.ok and "No such backend." in result.detail
    # nothing was drained by the refused commands
    assert {stack.haproxy.server_field(n, "status") for n in stack.names} == {"no check"}


async def test_preflight_names_every_problem_before_anything_changes(stack, tmp_path) -> None:
    config = lb_config(stack)
    assert await preflight(config, list(config.hosts)) == []
    hosts = [
        replace(config.hosts[0], backend_name="web-9"),
        replace(config.hosts[1], backend_name="portl/host-2"),
    ]
    problems = await preflight(config, hosts)
    assert problems == [
        "load balancer: host-1: HAProxy backend 'portal' has no server 'web-9'",
        "load balancer: host-2: HAProxy has no backend 'portl'",
    ]
    gone = lb_config(stack, socket=str(tmp_path / "no.sock"))
    (problem,) = await preflight(gone, list(gone.hosts))
    assert "unreachable" in problem and "no.sock" in problem
    tcp = lb_config(stack, socket="127.0.0.1:1")
    (problem,) = await preflight(tcp, list(tcp.hosts))
    assert "HAProxy runtime API 127.0.0.1:1 unreachable" in problem


async def test_preflight_checks_the_stats_socket_the_batch_analysis_reads(stack, tmp_path) -> None:
    """Traffic judged from [monitor.haproxy] (no haproxy load balancer): its socket and
    backend are asked in phase 1, before anything switches."""
    base = {
        "portal": {"repository": "x", "deploy_path": str(stack.root / "host-1")},
        "hosts": [{"name": n, "address": "127.0.0.1"} for n in stack.names],
        "rollout": {"analysis_seconds": 1},
    }
    good = parse_config(
        {
            **base,
            "monitor": {
                "haproxy": {"enabled": True, "socket": stack.haproxy.socket, "backend": "portal"}
            },
        }
    )
    assert await preflight(good, list(good.hosts)) == []
    wrong = parse_config(
        {
            **base,
            "monitor": {
                "haproxy": {"enabled": True, "socket": stack.haproxy.socket, "backend": "web"}
            },
        }
    )
    problems = await preflight(wrong, list(wrong.hosts))
    assert problems[0] == "[monitor.haproxy] host-1: HAProxy has no backend 'web'"
    gone = parse_config(
        {**base, "monitor": {"haproxy": {"enabled": True, "socket": str(tmp_path / "x.sock")}}}
    )
    (problem,) = await preflight(gone, list(gone.hosts))
    assert problem.startswith("[monitor.haproxy] HAProxy runtime API") and "unreachable" in problem


def test_haproxy_config_is_complete_or_refused() -> None:
    base = {
        "portal": {"repository": "x", "deploy_path": "/srv"},
        "hosts": [{"name": "a", "address": "h"}],
    }
    with pytest.raises(ConfigError) as err:
        parse_config({**base, "load_balancer": {"kind": "haproxy", "backend": "b"}})
    assert "needs socket" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config({**base, "load_balancer": {"kind": "haproxy", "socket": "/s"}})
    assert "needs backend" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config(
            {**base, "load_balancer": {"kind": "haproxy", "socket": "sock", "backend": "b"}}
        )
    assert "socket 'sock'" in str(err.value)


async def test_command_balancer_fails_on_nonzero_exit_or_stderr_and_keeps_output() -> None:
    # the README's old example: socat exits 0 while HAProxy answers "No such server."
    complained = await run_lb_action("command", "echo 'No such server.' >&2; exit 0")
    assert not complained.ok and "No such server." in complained.detail
    failed = await run_lb_action("command", "echo partial; exit 3")
    assert not failed.ok and "exited 3" in failed.detail and "partial" in failed.output
    fine = await run_lb_action("command", "echo drained web-1")
    assert fine.ok and fine.output == "drained web-1\n"


async def test_misnamed_server_fails_phase_one_and_nothing_is_switched(
    sshd, stack, tmp_path
) -> None:
    repo = make_app_repo(tmp_path, {"pages": 200, "health": 200})
    cfg = stack_config(sshd, stack, repo)
    result = await engine_for(cfg).deploy(revision="v1")
    assert result.ok, result.error
    v1 = result.release
    cfg["hosts"][2]["backend_name"] = "host-3x"
    engine = engine_for(cfg)
    result = await engine.deploy(revision="v2")
    assert not result.ok
    failed = [p for p in result.phases if p.status == "failed"]
    assert failed[0].name == "validate-pre"
    assert "host-3: HAProxy backend 'portal' has no server 'host-3x'" in failed[0].detail
    assert [current(stack.root, n) for n in stack.names] == [v1] * 3
    assert {stack.haproxy.server_field(n, "status") for n in stack.names} == {"no check"}


async def test_deploy_drains_and_readies_each_server_through_haproxy(sshd, stack, tmp_path) -> None:
    repo = make_app_repo(tmp_path, {"pages": 200, "health": 200})
    cfg = stack_config(sshd, stack, repo)
    engine = engine_for(cfg)
    result = await engine.deploy(revision="v2")
    assert result.ok, result.error
    assert [current(stack.root, n) for n in stack.names] == [result.release] * 3
    assert {stack.haproxy.server_field(n, "status") for n in stack.names} == {"no check"}
    lines = [
        (e.host, e.data["line"])
        for e in engine.journal.events(result.deployment_id)
        if e.kind == Kind.STEP_OUTPUT and e.data.get("step") in ("lb_drain", "lb_enable")
    ]
    assert ("host-2", "set server portal/host-2 state drain") in lines
    assert ("host-2", "set server portal/host-2 state ready") in lines


async def test_command_balancer_complaint_fails_the_switch_and_is_journaled(
    sshd, stack, tmp_path
) -> None:
    repo = make_app_repo(tmp_path, {"pages": 200, "health": 200})
    cfg = stack_config(sshd, stack, repo)
    assert (await engine_for(cfg).deploy(revision="v1")).ok
    cfg["load_balancer"] = {
        "kind": "command",
        "drain_command": "echo 'No such server.' >&2",
        "enable_command": "true",
    }
    cfg["rollout"]["drain_seconds"] = 0
    engine = engine_for(cfg)
    result = await engine.deploy(revision="v2")
    assert not result.ok
    switch = next(p for p in result.phases if p.name == "switch")
    assert switch.status == "failed" and "No such server." in switch.detail
    journal = [
        e.data["line"]
        for e in engine.journal.events(result.deployment_id)
        if e.kind == Kind.STEP_OUTPUT and e.data.get("step") == "lb_drain"
    ]
    assert "No such server." in journal
    # the canary failed before its switch: no host moved
    v1 = {current(stack.root, n) for n in stack.names}
    assert len(v1) == 1 and result.release not in v1


async def test_preflight_refuses_a_version_key_the_live_document_lacks(stack) -> None:
    from backend.engine.adapters.checks import version_key_problems

    """``/version`` answers ``{"revision": ...}`` on every host: ``version_key = "revision"``
    is fine; ``build.sha`` is refused in phase 1, naming what the document holds."""
    for name in stack.names:
        seed_release(stack.root, name, "r1", GOOD)
    raw = {
        "portal": {
            "repository": "x",
            "deploy_path": str(stack.root / "host-1"),
            "version_url": "/version",
        },
        "hosts": [
            {"name": n, "address": "127.0.0.1", "base_url": stack.apps[n].url} for n in stack.names
        ],
    }
    good = parse_config({**raw, "validation": {"version_key": "revision"}})
    assert await version_key_problems(good, list(good.hosts)) == []
    bad = parse_config({**raw, "validation": {"version_key": "build.sha"}})
    problems = await version_key_problems(bad, list(bad.hosts))
    assert len(problems) == 3
    assert problems[0] == (
        f"[validation] version_key build.sha: {stack.apps['host-1'].url}/version:"
        " 'build' is not in the document (keys revision)"
    )
