"""Time from the first bad window to ``on_trigger`` (the rollback starting), against the
rule's configured duration, on a real degrading app on loopback with real traffic.

For each source (the access log through ``tail -F``, /metrics), each run: healthy traffic
for two windows, then the app answers 30% of requests with 500; the rule is
``error_rate > 5%`` for ``--windows`` windows. Reported per run:

- ``degrade->trigger``: from the moment the app degraded (anywhere in a window) to
  ``on_trigger``: between (N-1) and N windows;
- ``first bad window->trigger``: from the start of the first window the rule saw bad;
- ``lag``: ``on_trigger`` minus the end of the window that fired the rule (the monitor's
  own delay: closing the window, judging, emitting, calling back).

The ideal is first bad window->trigger == configured duration (N windows) and lag ~ 0.

Run: ``.venv/bin/python bench/monitor_trigger.py [--window 1] [--windows 3] [--runs 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.config import parse_config
from backend.events import EventBus, Kind
from backend.monitor import Monitor, TriggerInfo
from backend.transport.local import LocalHost
from tests.test_monitor_app import DegradingApp, Traffic


async def one_run(source: str, window: float, windows: int, root: Path) -> dict[str, float]:
    log = root / f"{source}-{time.monotonic_ns()}.log"
    app = DegradingApp(log).start()
    sources: dict[str, Any] = (
        {"access_log": {"enabled": True, "path": str(log)}}
        if source == "access_log"
        else {"prometheus": {"enabled": True, "urls": [f"{app.url}/metrics"],
                             "interval_seconds": min(1.0, window / 5)}}
    )  # fmt: skip
    config = parse_config(
        {
            "portal": {"repository": "file:///dev/null", "deploy_path": "/srv"},
            "hosts": [{"name": "web-1", "address": "127.0.0.1", "transport": "local"}],
            "state": {"dir": str(root / "state")},
            "monitor": {
                "window_seconds": window, "min_requests": 10, "default_rules": False,
                "rules": [{"name": "errors", "metric": "error_rate", "threshold": 0.05,
                           "for_windows": windows}],
                **sources,
            },
        }
    )  # fmt: skip
    bus = EventBus()
    totals: list[dict[str, Any]] = []
    bus.subscribe(
        lambda e: (
            totals.append(e.data)
            if e.kind == Kind.METRIC_SAMPLE and e.data.get("host") == "total"
            else None
        )
    )
    fired: list[tuple[float, TriggerInfo]] = []

    async def on_trigger(info: TriggerInfo) -> None:
        fired.append((time.time(), info))

    hosts = {"web-1": LocalHost("web-1")} if source == "access_log" else {}
    monitor = Monitor(config, hosts, bus, f"bench-{source}", on_trigger, True)
    traffic = await Traffic(app.url, concurrency=4, pause=0.005).start()
    try:
        await monitor.start()
        while len(totals) < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(random.uniform(0.0, window * 0.8))  # anywhere in a window
        degraded = time.time()
        app.degrade(errors=0.3)
        await asyncio.wait_for(monitor.triggered.wait(), windows * window * 3 + 10)
        await monitor.stop()
    finally:
        await traffic.stop()
        app.stop()
    at, info = fired[0]
    return {
        "degrade->trigger": at - degraded,
        "first bad window->trigger": at - info.window_start,
        "lag": at - info.window_end,
        "configured": windows * window,
    }


def _quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Cancelled ``tail`` followers at the end of a run are expected, not news."""
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


async def main() -> None:
    asyncio.get_running_loop().set_exception_handler(_quiet)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=1.0, help="window seconds")
    parser.add_argument("--windows", type=int, default=3, help="bad windows that fire")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(
        f"rule error_rate > 5% for {args.windows} windows of {args.window:g}s"
        f" (configured duration {args.windows * args.window:g}s); {args.runs} runs per source"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for source in ("access_log", "prometheus"):
            runs = [await one_run(source, args.window, args.windows, Path(tmp))
                    for _ in range(args.runs)]  # fmt: skip
            print(f"{source}:")
            for key in ("degrade->trigger", "first bad window->trigger", "lag"):
                values = [r[key] for r in runs]
                print(
                    f"  {key:<28} median {statistics.median(values):7.3f}s"
                    f"  min {min(values):7.3f}s  max {max(values):7.3f}s"
                )


if __name__ == "__main__":
    asyncio.run(main())
