"""Failed user requests per scenario, behind a real HAProxy, under steady load.

Three app processes on loopback (tests/fixtures/portal_app.py: each serves its host's
``current`` release and says so in ``X-Release``), a real haproxy in front (runtime API on
a Unix socket), the hosts' deploy paths reached through one real OpenSSH server, and a
load generator (tests/fixtures/loadgen.py, ``--rate`` requests/s through HAProxy) running
for the whole deployment. Batches ``["1", "100%"]``, ``analysis_seconds`` held per batch.

Scenarios, each from v1 live on every host:

- ``good``: v2 is healthy; every host ends on v2.
- ``bad-pages``: v2's pages answer 500, its health URL 200; the batch analysis (real
  traffic from HAProxy's counters) stops it at the canary.
- ``bad-health``: v2's health URL answers 500; the switch's health wait fails on the
  canary, which was drained, so users never meet it.
- ``rollback``: v2 (healthy) deployed, then ``engine.rollback(id)`` under load.

For each: the outcome, the requests sent, failed (5xx or no answer) and served by v2,
the wall time, and for rollbacks the engine's ``alarm_to_serving_seconds``.

Run by hand (about 2-3 min)::

    .venv/bin/python bench/traffic_scenarios.py [--rate 40] [--analysis 2] [--json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.config import parse_config  # noqa: E402
from backend.engine import Engine  # noqa: E402
from backend.journal import Journal  # noqa: E402
from bench.harness import run_and_report  # noqa: E402
from tests.engine.helpers import current  # noqa: E402
from tests.fixtures.loadgen import LoadGenerator  # noqa: E402
from tests.fixtures.sshd import SSHServer  # noqa: E402
from tests.traffic_stack import GOOD, make_app_repo, stack_config, start_stack  # noqa: E402

SCENARIOS: dict[str, dict[str, Any]] = {
    "good": GOOD,
    "bad-pages": {"pages": 500, "health": 200},
    "bad-health": {"pages": 200, "health": 500},
    "rollback": GOOD,
}


def engine_for(cfg: dict[str, Any]) -> Engine:
    config = parse_config(cfg)
    return Engine(config, journal=Journal(Path(config.state.dir) / "journal.db"))


async def scenario(
    sshd: SSHServer, name: str, work: Path, rate: float, analysis: float
) -> dict[str, Any]:
    root = work / name
    stack = start_stack(root / "portal")
    try:
        repo = make_app_repo(root, SCENARIOS[name])
        cfg = stack_config(sshd, stack, repo)
        first = await engine_for(cfg).deploy(revision="v1")
        if not first.ok:
            return {"scenario": name, "skipped": f"v1: {first.error}"}
        cfg["rollout"] = {**cfg["rollout"], "analysis_seconds": analysis}
        cfg["portal"]["public_url"] = stack.haproxy.url
        engine = engine_for(cfg)
        rollback: dict[str, Any] | None = None
        with LoadGenerator(stack.haproxy.url, rate=rate, workers=4) as load:
            t0 = time.perf_counter()
            result = await engine.deploy(revision="v2")
            outcome = result.outcome
            if name == "rollback" and result.ok:
                rb = await engine.rollback(result.deployment_id, "bench")
                outcome = f"deployed, then rollback {rb.outcome}"
                rollback = rb.to_dict()
            seconds = time.perf_counter() - t0
        rollback = rollback or result.rollback or {}
        on = [current(stack.root, n) for n in stack.names]
        return {
            "scenario": name,
            "outcome": outcome,
            "requests": load.total,
            "failed": load.failed,
            "served_by_v2": load.releases.get(result.release, 0),
            "failed_on_v2": load.failed_by_release.get(result.release, 0),
            "seconds": seconds,
            "alarm_to_serving": rollback.get("alarm_to_serving_seconds"),
            "hosts_on_v1": sum(r == first.release for r in on),
        }
    finally:
        stack.stop()


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | outcome | requests | failed | served by v2 | failed on v2"
        " | hosts on v1 after | alarm -> v1 serving (s) | wall (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['scenario']} | skipped: {r['skipped']} | | | | | | | |")
            continue
        serving = r["alarm_to_serving"]
        lines.append(
            f"| {r['scenario']} | {r['outcome']} | {r['requests']} | {r['failed']}"
            f" | {r['served_by_v2']} | {r['failed_on_v2']} | {r['hosts_on_v1']}/3"
            f" | {'-' if serving is None else f'{serving:.2f}'} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sshd = SSHServer(root=work / "sshd").start()
    try:
        return {
            "scenarios": [
                await scenario(sshd, name, work, args.rate, args.analysis) for name in SCENARIOS
            ]
        }
    finally:
        sshd.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=40.0, help="requests/s through HAProxy")
    parser.add_argument("--analysis", type=float, default=2.0, help="analysis_seconds per batch")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    run_and_report(
        lambda work: main_async(args, work),
        prefix="portal-ops-bench-traffic-",
        as_json=args.json,
        render=lambda out: markdown(out["scenarios"]),
    )


if __name__ == "__main__":
    main()
