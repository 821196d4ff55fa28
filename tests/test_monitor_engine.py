"""Phase 9 end to end: the real engine deploys over a real sshd, the monitor follows a real
access log over the deployment's own SSH connection, the app degrades, the rule fires,
and the deployment is rolled back by the engine, once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend.config import parse_config
from backend.engine import Engine
from backend.events import EventBus, Kind
from backend.journal import Journal
from backend.monitor import SampleStore
from tests.engine.helpers import current, make_repo, ssh_config
from tests.fixtures import SSHServer
from tests.test_monitor_app import DegradingApp, Traffic


@pytest.mark.slow  # two real deployments through the engine: ~20 s on a quiet 2-core box
async def test_phase_9_rule_fires_and_the_deployment_is_rolled_back(
    sshd: SSHServer, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    app = DegradingApp(tmp_path / "nginx" / "access.log").start()
    monitor = {
        "bake_seconds": 20, "window_seconds": 0.5, "min_requests": 10, "default_rules": False,
        "baseline_seconds": 0,  # the rule is absolute; no pre-switch baseline to wait for
        "access_log": {"enabled": True, "path": str(app.log_path)},
        "rules": [{"name": "errors", "metric": "error_rate", "threshold": 0.05, "for_windows": 3}],
    }  # fmt: skip
    plain = ssh_config(sshd, tmp_path, repo, hosts=1)
    watched = ssh_config(sshd, tmp_path, repo, hosts=1, monitor=monitor)
    journal = Journal(tmp_path / "state" / "journal.db")
    first = await Engine(parse_config(plain), journal=journal).deploy(revision="v1")
    assert first.ok, first.error
    app.degrade(errors=0.3)  # version 2 is bad from the moment it is live
    bus = EventBus()
    live = asyncio.Event()  # traffic from phase 9 on: the earlier phases need no load
    bus.subscribe(lambda e: live.set() if e.kind == Kind.PHASE_STARTED and e.phase == "finalize"
                  else None)  # fmt: skip
    engine = Engine(parse_config(watched), bus=bus, journal=journal)
    deploying = asyncio.create_task(engine.deploy(revision="v2"))
    await asyncio.wait({deploying, asyncio.create_task(live.wait())},
                       return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
    traffic = await Traffic(app.url, concurrency=4, pause=0.005).start()
    try:
        result = await asyncio.wait_for(deploying, 120)
    finally:
        await traffic.stop()
        app.stop()
    assert result.outcome == "rolled_back", result.error
    assert current(tmp_path, "host-1") == first.release
    finalize = next(p for p in result.phases if p.name == "finalize")
    assert finalize.status == "failed" and "monitoring: rule errors" in finalize.detail
    events = journal.events(result.deployment_id)
    samples = [e for e in events if e.kind == Kind.METRIC_SAMPLE and e.run == "monitor"]
    critical = [e for e in events if e.kind == Kind.INCIDENT and e.run == "monitor"
                and e.data["severity"] == "critical"]  # fmt: skip
    assert len(critical) == 1 and critical[0].data["evidence"]["rule"] == "errors"
    assert sum(1 for e in samples if e.host is None and "errors" in e.data["bad_rules"]) == 3
    assert sum(1 for e in events if e.kind == Kind.ROLLBACK_STARTED) == 1
    started = next(e for e in events if e.kind == Kind.ROLLBACK_STARTED)
    assert started.data["trigger"]["rule"] == "errors"  # the rule, not just "phase failed"
    rows = SampleStore(journal.path).rows(result.deployment_id, phase="monitor")
    assert rows and rows[-1]["verdict"] == "fail"
    # `show` graphs the monitored windows from the same samples
    from click.testing import CliRunner

    from backend.demo.sandbox import dump_toml
    from tui.cli import cli

    config_file = tmp_path / "portal-ops.toml"
    config_file.write_text(dump_toml(watched))
    shown = CliRunner().invoke(cli, ["show", result.deployment_id, "--config", str(config_file)])
    assert shown.exit_code == 0, shown.output
    assert "health after the switch" in shown.output and "verdict" in shown.output
    assert "x" in shown.output.split("verdict", 1)[1].splitlines()[0]  # the failing windows
