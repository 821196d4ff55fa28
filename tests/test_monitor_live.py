"""The monitor against a real degrading app on loopback, with real traffic.

The access log is followed with ``tail -F`` through a LocalHost (and once through a real
sshd); /metrics is scraped over HTTP; probes hit /health. Windows are 0.5 s and minimum
request counts small, so each test runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from backend.config import Config, parse_config
from backend.events import Event, EventBus, Kind
from backend.monitor import Monitor, SampleStore, TriggerInfo
from backend.transport.local import LocalHost
from backend.transport.ssh import SSHHost, SSHOptions
from tests.fixtures import SSHServer
from tests.test_monitor_app import DegradingApp, Traffic

WINDOW = 0.5


def make_config(state: Path, monitor: dict[str, Any]) -> Config:
    return parse_config(
        {
            "portal": {"repository": "file:///dev/null", "deploy_path": "/srv/portal"},
            "hosts": [{"name": "web-1", "address": "127.0.0.1", "transport": "local"}],
            "state": {"dir": str(state)},
            "monitor": {
                "window_seconds": WINDOW,
                "min_requests": 10,
                "default_rules": False,
                **monitor,
            },
        }
    )


def error_rule(**extra: Any) -> dict[str, Any]:
    return {"name": "errors", "metric": "error_rate", "threshold": 0.05, "for_seconds": 1.5,
            **extra}  # fmt: skip


class Recorder:
    """Every event the monitor emits, in order, with the time it arrived."""

    def __init__(self, bus: EventBus) -> None:
        self.events: list[tuple[float, Event]] = []
        bus.subscribe(lambda e: self.events.append((time.monotonic(), e)))

    def totals(self) -> list[dict[str, Any]]:
        return [
            e.data for _, e in self.events
            if e.kind == Kind.METRIC_SAMPLE and e.data["host"] == "total" and e.data["phase"] == "monitor"
        ]  # fmt: skip

    def incidents(self, severity: str) -> list[dict[str, Any]]:
        return [
            e.data for _, e in self.events
            if e.kind == Kind.INCIDENT and e.data["severity"] == severity
        ]  # fmt: skip


class Calls:
    """An on_trigger that counts its calls."""

    def __init__(self) -> None:
        self.infos: list[TriggerInfo] = []
        self.at: list[float] = []

    async def __call__(self, info: TriggerInfo) -> None:
        self.infos.append(info)
        self.at.append(time.monotonic())


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[DegradingApp]:
    log = tmp_path / "logs" / "access.log"
    server = DegradingApp(log).start()
    yield server
    server.stop()


async def until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


# -- access log (tail -F through the transport) -------------------------------------------------


async def test_error_rule_fires_after_its_duration_not_before_and_once(
    app: DegradingApp, state_dir: Path
) -> None:
    config = make_config(state_dir, {"access_log": {"enabled": True, "path": str(app.log_path)},
                                     "rules": [error_rule()]})  # fmt: skip
    bus = EventBus()
    seen = Recorder(bus)
    calls = Calls()
    monitor = Monitor(config, {"web-1": LocalHost("web-1")}, bus, "bp-live-1", calls, True)
    traffic = await Traffic(app.url, concurrency=4, pause=0.005).start()
    try:
        await monitor.start()
        await until(lambda: len(seen.totals()) >= 2)
        degraded_at = time.monotonic()
        app.degrade(errors=0.3)
        await asyncio.wait_for(monitor.triggered.wait(), 30)
        fired = len(seen.totals())
        await until(lambda: len(seen.totals()) >= fired + 3)  # the rule stays bad...
        report = await monitor.stop()
    finally:
        await traffic.stop()
    assert len(calls.infos) == 1  # ...and the rollback was still started exactly once
    info = calls.infos[0]
    assert info.rule == "errors" and len(info.values) == 3 and min(info.values) > 0.05
    totals = seen.totals()
    upto = [t for t in totals if t["window"] <= info.windows[-1]["index"]]
    assert sum(1 for t in upto if "errors" in t["bad_rules"]) == 3  # fired on the 3rd, not before
    assert all(t["verdict"] == "pass" for t in totals[:2])
    assert calls.at[0] - degraded_at >= 2 * WINDOW  # two whole bad windows must have passed
    assert sum(1 for t in totals if "errors" in t["bad_rules"]) >= 6
    critical = seen.incidents("critical")
    assert len(critical) == 1 and critical[0]["evidence"]["rule"] == "errors"
    assert critical[0]["evidence"]["values"] == info.values
    assert report.verdict == "fail" and report.trigger is not None
    assert report.trigger["window_start"] < report.trigger["window_end"]
    rows = SampleStore(state_dir / "journal.db").rows("bp-live-1", phase="monitor")
    assert len(rows) == 2 * len(totals) and {r["host"] for r in rows} == {"web-1", "total"}
    data = json.loads(Path(report.paths[0]).read_text())
    assert data["trigger"]["rule"] == "errors" and data["rollback"]["ok"] is True


async def test_a_single_spike_does_not_fire(app: DegradingApp, state_dir: Path) -> None:
    config = make_config(state_dir, {"access_log": {"enabled": True, "path": str(app.log_path)},
                                     "rules": [error_rule()]})  # fmt: skip
    bus = EventBus()
    seen = Recorder(bus)
    calls = Calls()
    monitor = Monitor(config, {"web-1": LocalHost("web-1")}, bus, "bp-spike", calls, True)
    traffic = await Traffic(app.url, concurrency=4, pause=0.005).start()
    try:
        await monitor.start()
        await until(lambda: len(seen.totals()) >= 2)
        app.degrade(errors=0.5)
        ends = threading.Timer(0.35, app.restore)  # shorter than a window: two see it at most
        ends.start()  # a thread, so that a busy event loop cannot stretch the spike
        await asyncio.to_thread(ends.join)
        spiked = len(seen.totals())
        await until(lambda: len(seen.totals()) >= spiked + 4)
        report = await monitor.stop()
    finally:
        await traffic.stop()
    bad = [t for t in seen.totals() if "errors" in t["bad_rules"]]
    assert 1 <= len(bad) <= 2  # the spike was seen...
    assert calls.infos == [] and not monitor.triggered.is_set()  # ...and did not fire
    assert seen.incidents("critical") == [] and report.trigger is None


async def test_too_few_requests_are_inconclusive_and_never_fire(
    app: DegradingApp, state_dir: Path
) -> None:
    config = make_config(
        state_dir,
        {"access_log": {"enabled": True, "path": str(app.log_path)},
         "rules": [error_rule(for_windows=1, for_seconds=None)], "inconclusive_alert_windows": 3},
    )  # fmt: skip
    app.degrade(errors=1.0)  # every request fails, but there are only a few of them
    bus = EventBus()
    seen = Recorder(bus)
    calls = Calls()
    monitor = Monitor(config, {"web-1": LocalHost("web-1")}, bus, "bp-quiet", calls, True)
    traffic = await Traffic(app.url, concurrency=1, pause=0.2).start()
    try:
        await monitor.start()
        await until(lambda: len(seen.totals()) >= 5)
        report = await monitor.stop()
    finally:
        await traffic.stop()
    totals = seen.totals()
    assert sum(t["requests"] for t in totals) >= 5 and all(t["error_rate"] == 1.0 for t in totals
                                                           if t["requests"])  # fmt: skip
    assert {t["verdict"] for t in totals} == {"inconclusive"}
    assert calls.infos == [] and report.trigger is None and report.verdict == "inconclusive"
    warnings = [w["message"] for w in seen.incidents("warning")]
    assert any("INCONCLUSIVE" in w for w in warnings)


async def test_access_log_over_real_ssh(
    app: DegradingApp, state_dir: Path, sshd: SSHServer
) -> None:
    config = make_config(state_dir, {"access_log": {"enabled": True, "path": str(app.log_path)},
                                     "rules": [error_rule(for_seconds=1.0)]})  # fmt: skip
    options = SSHOptions(
        known_hosts=str(sshd.known_hosts), identity_files=[str(sshd.client_key)], use_agent=False
    )
    host = SSHHost("web-1", sshd.host, sshd.port, sshd.user, options=options)
    bus = EventBus()
    seen = Recorder(bus)
    calls = Calls()
    monitor = Monitor(config, {"web-1": host}, bus, "bp-ssh", calls, True)
    traffic = await Traffic(app.url, concurrency=4, pause=0.005).start()
    try:
        await monitor.start()
        await until(lambda: len(seen.totals()) >= 2 and seen.totals()[-1]["requests"] >= 10)
        app.degrade(errors=0.3)
        await asyncio.wait_for(monitor.triggered.wait(), 30)
        report = await monitor.stop()
    finally:
        await traffic.stop()
        await host.close()
    assert len(calls.infos) == 1 and calls.infos[0].host in ("total", "web-1")
    assert len(calls.infos[0].values) == 2 and report.verdict == "fail"
    await asyncio.sleep(0.3)  # traffic has stopped; a leftover tail would still be there
    left = subprocess.run(["pgrep", "-f", f"tail -n0 -F -- {app.log_path}"], capture_output=True)
    assert left.stdout == b"", "the remote tail must end with the monitor"


async def test_follower_recycles_its_tail_and_never_counts_twice(
    app: DegradingApp, state_dir: Path
) -> None:
    config = make_config(state_dir, {"access_log": {"enabled": True, "path": str(app.log_path)},
                                     "rules": [error_rule()]})  # fmt: skip
    monitor = Monitor(config, {"web-1": LocalHost("web-1")}, None, "bp-recycle", None, False)
    traffic = await Traffic(app.url, concurrency=4, pause=0.005).start()
    try:
        await monitor.start()
        monitor.followers[0].recycle_lines = 40  # a fresh tail every 40 lines
        served = app.served
        await until(lambda: app.served - served >= 300)
        report = await monitor.stop()
        served = app.served - served
    finally:
        await traffic.stop()
    follower = monitor.followers[0]
    counted = report.after["total"]["requests"]
    assert follower.restarts >= 3
    assert 0.7 * served <= counted <= app.served  # a few lines missed, none twice


# -- /metrics and probes ------------------------------------------------------------------------


async def test_metrics_latency_rule_against_the_baseline(
    app: DegradingApp, state_dir: Path
) -> None:
    rule = {"name": "slow", "metric": "p95", "threshold": 60, "baseline_factor": 2.0,
            "for_windows": 2}  # fmt: skip
    config = make_config(
        state_dir,
        {"prometheus": {"enabled": True, "urls": [f"{app.url}/metrics"], "interval_seconds": 0.1},
         "rules": [rule]},
    )  # fmt: skip
    bus = EventBus()
    seen = Recorder(bus)
    calls = Calls()
    monitor = Monitor(config, {}, bus, "bp-metrics", calls, True)
    traffic = await Traffic(app.url, concurrency=12, pause=0.005).start()
    try:
        await until(lambda: traffic.sent >= 20)  # flowing before the baseline window opens
        baseline = await monitor.record_baseline(4.0)  # >= 20 requests even at load 16
        assert baseline["total"].requests >= 20 and baseline["total"].p95 < 60
        await monitor.start()
        await until(lambda: len(seen.totals()) >= 1)
        app.degrade(latency=0.12)
        await asyncio.wait_for(monitor.triggered.wait(), 30)
        report = await monitor.stop()
    finally:
        await traffic.stop()
    info = calls.infos[0]
    assert monitor.traffic == "prometheus" and info.rule == "slow"
    assert info.baseline is not None and all(v > max(60, 2 * info.baseline) for v in info.values)
    assert report.baseline is not None and report.trends["total"]["p95"]["assessment"] == "worse"
    assert report.after["total"]["requests"] > 0


async def test_metrics_survive_an_app_restart(app: DegradingApp, state_dir: Path) -> None:
    config = make_config(
        state_dir,
        {"prometheus": {"enabled": True, "urls": [f"{app.url}/metrics"], "interval_seconds": 0.1},
         "rules": [error_rule()]},
    )  # fmt: skip
    bus = EventBus()
    seen = Recorder(bus)
    monitor = Monitor(config, {}, bus, "bp-restart", None, False)
    traffic = await Traffic(app.url, concurrency=4, pause=0.005).start()
    try:
        await monitor.start()
        await until(lambda: len(seen.totals()) >= 2)
        app.restart_metrics()  # counters go back to zero
        await until(lambda: len(seen.totals()) >= 5)
        await monitor.stop()
    finally:
        await traffic.stop()
    counted = sum(t["requests"] for t in seen.totals())
    assert 0 < counted <= traffic.sent  # a reset never counts negative or doubled requests
    assert all(t["requests"] >= 0 and t["error_rate"] in (0, None) for t in seen.totals())


async def test_probe_failures_fire_probe_down(app: DegradingApp, state_dir: Path) -> None:
    config = make_config(
        state_dir,
        {"probes": {"urls": [f"{app.url}/health"], "interval_seconds": 0.1},
         "rules": [{"name": "probe-down", "metric": "probe_failures", "op": ">=", "threshold": 3}]},
    )  # fmt: skip
    bus = EventBus()
    seen = Recorder(bus)
    calls = Calls()
    monitor = Monitor(config, {}, bus, "bp-probe", calls, True)
    await monitor.start()
    await until(lambda: len(seen.totals()) >= 2)
    assert seen.totals()[-1]["uptime"] == 1.0 and monitor.traffic == "probes"
    app.degrade(health_down=True)
    await asyncio.wait_for(monitor.triggered.wait(), 30)
    report = await monitor.stop()
    assert calls.infos[0].rule == "probe-down" and calls.infos[0].values[0] >= 3
    assert report.targets["uptime"]["status"] == "missed"
    assert any(w["message"].startswith("probe ") for w in seen.incidents("warning"))
