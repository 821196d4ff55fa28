"""The flags' side of a run (phases 3 and 8, rollback phase 2) on a real Engine and
Deployment with a local host, seen through the engine's adapter (a RunContext), gated on a
real HTTP endpoint on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from backend.config import parse_config
from backend.context import RunContext
from backend.engine import Deployment, DeployOptions, Engine
from backend.engine.adapters import context_of
from backend.events import Kind
from backend.flags.release import (
    disable_for_rollback,
    prepare_release_flags,
    run_release_rollout,
    service_for,
)
from backend.identity import Operator


class Health:
    """/health on loopback: 200, or 500 once ``fail_after`` requests were answered."""

    def __init__(self) -> None:
        self.hits = 0
        self.fail_after: int | None = None
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                health.hits += 1
                bad = health.fail_after is not None and health.hits > health.fail_after
                self.send_response(500 if bad else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()


@pytest.fixture
def health() -> Iterator[Health]:
    h = Health()
    yield h
    h.server.shutdown()
    h.server.server_close()


def make_deployment(state_dir: Path, tmp_path: Path, health_url: str) -> Deployment:
    config = parse_config(
        {
            "portal": {
                "repository": "https://git.example.invalid/portal.git",
                "deploy_path": str(tmp_path / "portal"),
                "health_url": health_url,
            },
            "hosts": [{"name": "web-1", "address": "127.0.0.1", "transport": "local"}],
            "state": {"dir": str(state_dir)},
            "flags": {
                "release_flags": ["new-checkout", "ui-improvements"],
                "rollout_steps": [10, 50, 100],
                "rollout_hold": 0.2,
                "rollout_check_interval": 0.05,
            },
        }
    )
    engine = Engine(config, operator=Operator("lead", "bastion"))
    return Deployment(engine, "bp-20260101-0200", "bp-20260101-0200", DeployOptions())


async def test_phase_3_then_phase_8(state_dir: Path, tmp_path: Path, health: Health) -> None:
    deployment = make_deployment(state_dir, tmp_path, health.url)
    run = context_of(deployment)
    assert isinstance(run, RunContext)  # the adapter provides every member of the protocol
    events = []
    deployment.bus.subscribe(events.append)
    assert await prepare_release_flags(run) == 2
    assert await prepare_release_flags(run) == 0  # idempotent
    ok, detail = await run_release_rollout(run)
    assert ok, detail
    assert "new-checkout 100%" in detail and "ui-improvements 100%" in detail
    flag_events = [e for e in events if e.kind == Kind.FLAG_CHANGED]
    assert {e.deployment_id for e in flag_events} == {"bp-20260101-0200"}
    assert flag_events[0].data["operator"]["user"] == "lead"
    recorded = deployment.engine.journal.events("bp-20260101-0200")
    assert sum(1 for e in recorded if e.kind == Kind.FLAG_CHANGED) == len(flag_events)


async def test_phase_8_steps_back_and_reports_failure(
    state_dir: Path, tmp_path: Path, health: Health
) -> None:
    run = context_of(make_deployment(state_dir, tmp_path, health.url))
    await prepare_release_flags(run)
    health.hits, health.fail_after = 0, 1  # healthy before, failing at 10 %
    ok, detail = await run_release_rollout(run)
    assert not ok and "new-checkout: stepped-back" in detail and "HTTP 500" in detail
    with service_for(run) as service:
        assert not service.get("new-checkout").enabled  # back to its state before: off
        assert not service.get("ui-improvements").enabled  # never started


async def test_rollback_phase_2(state_dir: Path, tmp_path: Path, health: Health) -> None:
    from backend.engine.rollback import RollbackRun

    deployment = make_deployment(state_dir, tmp_path, health.url)
    await prepare_release_flags(context_of(deployment))
    await run_release_rollout(context_of(deployment))
    engine = deployment.engine
    rollback = RollbackRun(
        engine,
        deployment.deployment_id,
        engine.make_hosts(),
        {"release": deployment.release_id},
        reason="error rate 4%",
        trigger={"kind": "manual"},
    )
    run = context_of(rollback)
    why = rollback.reason
    out = await disable_for_rollback(run, ["new-checkout", "gone-flag"], kill_all=False, why=why)
    assert "disabled new-checkout" in out and "unknown: gone-flag" in out
    with service_for(run) as service:
        assert not service.get("new-checkout").enabled
        assert service.get("ui-improvements").enabled
        assert "error rate 4%" in service.history("new-checkout", 1)[0].reason
    out = await disable_for_rollback(run, [], kill_all=True, why=why)
    assert "kill switch switched on" in out
    assert "already on" in await disable_for_rollback(run, [], kill_all=True, why=why)
