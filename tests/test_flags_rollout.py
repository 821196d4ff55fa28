"""The gradual rollout: steps held and gated on a real HTTP health endpoint on loopback;
a failing gate stops the rollout and takes the flag back to its last healthy step."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from backend.events import EventBus, Kind
from backend.flags.gate import all_of, http_gate
from backend.flags.model import FlagError
from backend.flags.rollout import (
    ABORTED,
    COMPLETED,
    NOT_STARTED,
    STEPPED_BACK,
    GradualRollout,
    StepUpdate,
    parse_duration,
    parse_steps,
)
from backend.flags.service import FlagService
from backend.identity import Operator


class Health:
    """A /health endpoint whose answer the test controls (200 or 500)."""

    def __init__(self) -> None:
        self.status = 200
        self.hits = 0
        self.fail_after: int | None = None  # answer 500 from this many hits on
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                health.hits += 1
                if health.fail_after is not None and health.hits > health.fail_after:
                    health.status = 500
                body = b"ok" if health.status == 200 else b"failing"
                self.send_response(health.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def health() -> Iterator[Health]:
    h = Health()
    yield h
    h.close()


@pytest.fixture
def service(state_dir: Path) -> Iterator[FlagService]:
    bus = EventBus()
    svc = FlagService(state_dir / "journal.db", None, bus=bus, operator=Operator("eve", "bastion"))
    svc.create("ui-improvements")
    yield svc
    svc.close()


def rollout(
    service: FlagService,
    health: Health,
    on_step: Callable[[StepUpdate], None] | None = None,
    deployment_id: str | None = None,
) -> GradualRollout:
    """10 -> 50 -> 100, each held 0.3 s and checked every 0.05 s against ``health``."""
    return GradualRollout(
        service,
        "ui-improvements",
        [10, 50, 100],
        0.3,
        http_gate([health.url], timeout=2),
        on_step,
        check_interval=0.05,
        deployment_id=deployment_id,
    )


async def test_healthy_rollout_goes_10_50_100(service: FlagService, health: Health) -> None:
    seen: list[StepUpdate] = []
    changes = []
    assert service.bus is not None
    service.bus.subscribe(lambda e: changes.append(e) if e.kind == Kind.FLAG_CHANGED else None)
    result = await rollout(service, health, seen.append, deployment_id="bp-7").run()
    assert result.status == COMPLETED and result.ok
    assert [s.percentage for s in result.steps] == [10, 50, 100]
    # each step gated by at least one check (how many fit in the hold depends on the load)
    assert all(s.healthy and s.checks >= 1 for s in result.steps)
    assert result.final == (True, 100)
    assert [c.data["after"]["percentage"] for c in changes] == [10, 50, 100]
    assert all(c.deployment_id == "bp-7" for c in changes)
    assert [u.status for u in seen if u.status in ("started", "passed")] == [
        "started",
        "passed",
    ] * 3


async def test_failing_gate_steps_back_to_the_last_healthy_step(
    service: FlagService, health: Health
) -> None:
    def break_at_50(update: StepUpdate) -> None:
        if update.status == "started" and update.percentage == 50:
            health.status = 500  # the portal starts failing once half the companies have it

    result = await rollout(service, health, break_at_50).run()
    assert result.status == STEPPED_BACK and not result.ok
    assert result.failed_percentage == 50 and result.healthy_percentage == 10
    assert "HTTP 500" in result.reason
    flag = service.get("ui-improvements")
    assert (flag.enabled, flag.percentage) == (True, 10)
    assert result.final == (True, 10)
    last = service.history("ui-improvements", 1)[0]
    assert last.action == "rollout-step-back"
    assert "health gate failed at 50%" in last.reason and last.operator == "eve@bastion"
    assert [s.percentage for s in result.steps] == [10, 50]  # 100 never happened


async def test_failing_first_step_goes_back_to_the_state_before(
    service: FlagService, health: Health
) -> None:
    def break_now(update: StepUpdate) -> None:
        if update.status == "started":
            health.status = 503

    result = await rollout(service, health, break_now).run()
    assert result.status == STEPPED_BACK and result.healthy_percentage is None
    flag = service.get("ui-improvements")
    assert (flag.enabled, flag.percentage) == (False, 100)  # as it was: off


async def test_unhealthy_before_start_changes_nothing(service: FlagService, health: Health) -> None:
    health.status = 500
    revision = service.store.revision()
    result = await rollout(service, health).run()
    assert result.status == NOT_STARTED and "before the rollout" in result.reason
    assert service.store.revision() == revision


async def test_unreachable_health_endpoint_is_a_failure(service: FlagService) -> None:
    from tests.fixtures.net import free_port

    gate = http_gate([f"http://127.0.0.1:{free_port()}/health"], timeout=1)
    result = await GradualRollout(service, "ui-improvements", [10], 0, gate).run()
    assert result.status == NOT_STARTED and "ConnectError" in result.reason


async def test_rollout_stops_when_someone_else_takes_over(
    service: FlagService, health: Health
) -> None:
    def operator_disables(update: StepUpdate) -> None:
        if update.status == "started" and update.percentage == 50:
            service.emergency_disable("operator pulled the plug")

    result = await rollout(service, health, operator_disables).run()
    assert result.status == ABORTED and "emergency" in result.reason
    assert service.get("ui-improvements").percentage == 50  # left as is; the kill switch rules


async def test_raising_only_skips_steps_already_reached(
    service: FlagService, health: Health
) -> None:
    service.enable("ui-improvements", 50)
    result = await rollout(service, health).run()
    assert result.status == COMPLETED
    assert [s.percentage for s in result.steps] == [100]


async def test_a_gate_that_raises_or_hangs_is_unhealthy(
    service: FlagService, health: Health
) -> None:
    async def broken() -> tuple[bool, str]:
        raise RuntimeError("probe crashed")

    result = await GradualRollout(service, "ui-improvements", [10], 0, broken).run()
    assert result.status == NOT_STARTED and "probe crashed" in result.reason
    combined = all_of(http_gate([health.url]), broken)
    ok, why = await combined()
    assert not ok and "probe crashed" in why


def test_cli_rollout_steps_back_on_a_failing_endpoint(state_dir: Path, health: Health) -> None:
    from click.testing import CliRunner

    from tui.commands.feature import feature

    env = {"PORTAL_OPS_STATE_DIR": str(state_dir), "PORTAL_OPS_CONFIG": None}
    runner = CliRunner()
    assert runner.invoke(feature, ["create", "f"], env=env).exit_code == 0
    args = ["rollout", "f", "--steps=10,50", "--hold=0.2s", "--interval=0.05s"]
    done = runner.invoke(feature, [*args, f"--health-url={health.url}"], env=env)
    assert done.exit_code == 0, done.output
    assert "completed" in done.output

    assert runner.invoke(feature, ["disable", "f"], env=env).exit_code == 0
    health.hits, health.fail_after = 0, 1  # healthy at the start, failing during step 60
    failed = runner.invoke(
        feature, [*args[:2], "--steps=60,100", *args[3:], f"--health-url={health.url}"], env=env
    )
    assert failed.exit_code == 1, failed.output
    assert "stepped-back" in failed.output and "HTTP 500" in failed.output
    check = runner.invoke(feature, ["list", "--json"], env=env)
    assert '"enabled": false' in check.output and '"percentage": 50' in check.output


def test_parsers() -> None:
    assert parse_steps("10,50,100") == [10, 50, 100]
    assert parse_duration("5m") == 300 and parse_duration("250ms") == 0.25
    assert parse_duration("90") == 90 and parse_duration("1h") == 3600
    for bad in ("", "10,,50", "0,50", "50,10", "10,101", "ten"):
        with pytest.raises(FlagError):
            parse_steps(bad)
    for bad in ("soon", "-5s", "5 minutes"):
        with pytest.raises(FlagError):
            parse_duration(bad)


async def test_an_unpublished_step_stops_the_rollout(state_dir: Path, health: Health) -> None:
    """Redis unreachable: apps cannot see the step, so its health proves nothing."""
    from tests.fixtures.net import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    with FlagService(state_dir / "other.db", url, "t-flags") as service:
        service.create("f")
        gate = http_gate([health.url], timeout=2)
        result = await GradualRollout(service, "f", [10, 50], 0.1, gate).run()
        assert result.status == ABORTED and "not published" in result.reason
        flag = service.get("f")
        assert (flag.enabled, flag.percentage) == (False, 100)  # as before the rollout


async def test_paused_rollout_holds_its_step_gated_until_resumed(
    service: FlagService, health: Health
) -> None:
    import asyncio

    from backend.flags.rollout import RolloutControl

    control = RolloutControl()
    seen: list[StepUpdate] = []

    def on_step(update: StepUpdate) -> None:
        seen.append(update)
        if update.percentage == 10 and update.status == "started":
            control.toggle()  # the operator presses pause during the first step

    run = GradualRollout(
        service, "ui-improvements", [10, 50, 100], 0.3, http_gate([health.url], timeout=2),
        on_step, check_interval=0.05, control=control,
    )  # fmt: skip
    task = asyncio.create_task(run.run())
    await asyncio.sleep(1.0)  # more than three holds: without the pause it would be done
    assert not task.done()
    assert service.get("ui-improvements").percentage == 10
    assert any(u.status == "paused" for u in seen)
    hits = health.hits
    await asyncio.sleep(0.3)
    assert health.hits > hits  # still gated on health while paused
    control.toggle()
    result = await asyncio.wait_for(task, 10)
    assert result.status == COMPLETED and result.final == (True, 100)
    assert any(u.status == "resumed" for u in seen)
