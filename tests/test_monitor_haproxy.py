"""HAProxy's per-server stats as a monitor source: rules judge real user traffic (a load
generator through a real haproxy), so a canary serving 5xx is caught with no change to
the app, and only that host is blamed."""

from __future__ import annotations

from pathlib import Path

from backend.config import parse_config
from backend.events import EventBus
from backend.monitor.runner import Monitor
from tests.fixtures.loadgen import LoadGenerator
from tests.traffic_stack import GOOD, seed_release, stack

__all__ = ["stack"]


def monitor_config(stack, state: Path):
    return parse_config(
        {
            "portal": {"repository": "x", "deploy_path": str(stack.root / "host-1")},
            "hosts": [{"name": n, "address": "127.0.0.1"} for n in stack.names],
            "load_balancer": {
                "kind": "haproxy",
                "socket": stack.haproxy.socket,
                "backend": stack.haproxy.backend,
            },
            "state": {"dir": str(state)},
            "monitor": {
                "window_seconds": 1.0,
                "min_requests": 5,
                "default_rules": False,
                "probes": {"enabled": False},
                "haproxy": {"enabled": True, "interval_seconds": 0.25},
                "rules": [
                    {
                        "name": "canary-5xx",
                        "metric": "error_rate",
                        "threshold": 0.05,
                        "for_windows": 2,
                        "scope": "host",
                    },
                ],
            },
        }
    )


async def test_stats_fed_rule_fires_on_the_canary_serving_5xx(stack, tmp_path: Path) -> None:
    seed_release(stack.root, "host-1", "r2", {"pages": 500, "health": 200})
    for name in stack.names[1:]:
        seed_release(stack.root, name, "r1", GOOD)
    config = monitor_config(stack, tmp_path / "state")
    fired = []

    async def on_trigger(info) -> None:
        fired.append(info)

    monitor = Monitor(config, None, EventBus(), "bp-haproxy", on_trigger, True)
    assert monitor.traffic == "haproxy"
    with LoadGenerator(stack.haproxy.url, rate=60, workers=4) as load:
        report = await monitor.run(duration=20, stop_on_trigger=True)
    assert fired, f"no trigger; windows: {[s.to_dict() for s in monitor.latest]}"
    assert fired[0].host == "host-1" and fired[0].rule == "canary-5xx"
    assert report is not None
    # the source counted what users met: host-1's 5xx are the load generator's failures
    assert load.failed_by_release.get("r2", 0) > 0 and load.failed_by_release.get("r1", 0) == 0
    per_host = {s.host: s for s in monitor.latest}
    assert per_host["host-2"].errors == 0 and per_host["host-2"].requests > 0


async def test_unreachable_stats_socket_is_a_named_warning(stack, tmp_path: Path) -> None:
    config = monitor_config(stack, tmp_path / "state")
    config.monitor.haproxy.socket = str(tmp_path / "gone.sock")
    monitor = Monitor(config, None, EventBus(), "bp-gone", None, False)
    await monitor.start()
    reader = monitor.stat_readers[0]
    await reader.read_once()
    await monitor.stop()
    messages = [i["message"] for i in monitor.incidents]
    assert any("gone.sock unreachable" in m for m in messages), messages
