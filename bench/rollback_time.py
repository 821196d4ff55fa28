"""Rollback time across N loopback hosts, and time from a failed switch to the old release.

Hosts are deploy paths in a temp dir reached through one real OpenSSH server on loopback
(tests/fixtures/sshd.py), the engine tests' tiny portal (tests/engine/helpers.py: a git
repo with v1 and v2, v2 adds one migration to a text-file "database").

1. Manual rollback, N = 1, 10, 50: deploy v1 then v2 (rollout batches ``["100%"]``), then
   time ``await engine.rollback(deployment_id, "bench")``: total wall time and the ten
   rollback phases (from the RollbackResult). The two setup deployments skip phase 1's
   pre-deployment checks (``skip_validation=True``; ``--validate-setup`` runs them): at
   50 hosts they open hundreds of SSH sessions at once and, on a loaded 2-core machine,
   fail with "no answer within 20s" (see bench/README.md); for the same reason the setup
   deployments get a 120 s per-check timeout for phase 7's post-deployment checks (the
   timed rollback uses the default config). Each setup deployment
   gets a time budget (``--setup-budget``, default 180 s); an N whose setup exceeds it
   or fails is reported as skipped, with the reason.
2. Automatic rollback after a failed check, N = 1, 2, 3: v1 deployed, then v2 with
   ``reload = "grep -q 1 VERSION"`` (fails on v2 right after the switch, as a failed health
   check would). From the journal (``engine.journal.events(deployment_id)``): the time from
   the first failing switch step's STEP_FINISHED to the rollback's ``rb-switch``
   PHASE_FINISHED, i.e. until every host's ``current`` points at the old release again.

The engine's own ``rollout.concurrency`` (default 10 hosts at a time) is kept.

Run by hand (about 4-6 min on a busy 2-core machine)::

    .venv/bin/python bench/rollback_time.py [--hosts 1 10 50] [--setup-budget 180] [--json]

Everything runs on 127.0.0.1; sshd and every temp dir are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.config import parse_config  # noqa: E402
from backend.engine import Engine  # noqa: E402
from backend.engine.rollback import ROLLBACK_PHASES  # noqa: E402
from backend.events import Kind  # noqa: E402
from backend.journal import Journal  # noqa: E402
from bench.harness import run_and_report  # noqa: E402
from tests.engine.helpers import current, make_repo, ssh_config  # noqa: E402
from tests.fixtures.sshd import SSHServer  # noqa: E402

FAILED_CHECK_NS = (1, 2, 3)
SETUP_CHECK_TIMEOUT = 120.0  # seconds per validation check in the setup deployments


def engine_for(cfg: dict[str, Any]) -> Engine:
    config = parse_config(cfg)
    return Engine(config, journal=Journal(Path(config.state.dir) / "journal.db"))


async def setup_v1_v2(
    cfg: dict[str, Any], skip_validation: bool, budget: float
) -> tuple[str, str, dict[str, float]]:
    """Deploy v1 then v2, each within ``budget`` seconds; return (v1 release, v2
    deployment id, seconds of each)."""
    seconds: dict[str, float] = {}
    out: dict[str, Any] = {}
    for revision in ("v1", "v2"):
        t0 = time.perf_counter()
        try:
            result = await asyncio.wait_for(
                engine_for(cfg).deploy(revision=revision, skip_validation=skip_validation),
                budget,
            )
        except TimeoutError:
            raise SetupTooSlow(
                f"deploying {revision} took more than {budget:.0f} s (stopped)"
            ) from None
        seconds[revision] = time.perf_counter() - t0
        if not result.ok:
            raise RuntimeError(f"deploy {revision}: {result.outcome}: {result.error}")
        out[revision] = result
    return out["v1"].release, out["v2"].deployment_id, seconds


class SetupTooSlow(Exception):
    pass


async def manual_rollback(
    sshd: SSHServer, n: int, work: Path, budget: float, validate: bool
) -> dict[str, Any]:
    root = work / f"manual-{n}"
    repo = make_repo(root)
    cfg = ssh_config(sshd, root, repo, hosts=n, rollout={"batches": ["100%"]})
    # the setup only: a longer per-check timeout, as the post-deployment checks (phase 7,
    # not skipped by skip_validation) run on all N hosts at once; the rollback itself
    # runs with the default config
    setup_cfg = {**cfg, "validation": {"timeout": SETUP_CHECK_TIMEOUT}}
    try:
        old, deployment_id, setup = await setup_v1_v2(
            setup_cfg, skip_validation=not validate, budget=budget
        )
    except (RuntimeError, SetupTooSlow) as exc:
        return {"n": n, "skipped": f"setup: {str(exc)[:300]}"}
    engine = engine_for(cfg)
    t0 = time.perf_counter()
    result = await engine.rollback(deployment_id, "bench")
    total = time.perf_counter() - t0
    wrong = [f"host-{i}" for i in range(1, n + 1) if current(root, f"host-{i}") != old]
    return {
        "n": n,
        "outcome": result.outcome,
        "hosts_on_old_release": n - len(wrong),
        "setup": setup,
        "total": total,
        "engine_seconds": result.seconds,
        "alarm_to_serving": result.alarm_to_serving_seconds,
        "phases": {p.name: p.seconds for p in result.phases},
        "phase_status": {p.name: p.status for p in result.phases},
    }


async def failed_check(sshd: SSHServer, n: int, work: Path) -> dict[str, Any]:
    root = work / f"failed-{n}"
    repo = make_repo(root)
    cfg = ssh_config(sshd, root, repo, hosts=n, rollout={"batches": ["100%"]})
    if not (await engine_for(cfg).deploy(revision="v1")).ok:
        raise RuntimeError(f"deploy v1 to {n} host(s) failed")
    cfg["commands"]["reload"] = "grep -q 1 VERSION"  # true on v1, false on v2
    engine = engine_for(cfg)
    result = await engine.deploy(revision="v2")
    if result.outcome != "rolled_back":
        raise RuntimeError(f"expected rolled_back on {n} host(s), got {result.outcome}")
    events = engine.journal.events(result.deployment_id)
    failures = [
        e
        for e in events
        if e.kind == Kind.STEP_FINISHED
        and e.run == "deploy"
        and e.phase == "switch"
        and not e.data.get("ok")
    ]
    rb_switch = [
        e
        for e in events
        if e.kind == Kind.PHASE_FINISHED and e.run == "rollback" and e.phase == "rb-switch"
    ]
    rb_done = [e for e in events if e.kind == Kind.ROLLBACK_FINISHED]
    switch_done = [
        e
        for e in events
        if e.kind == Kind.PHASE_FINISHED and e.run == "deploy" and e.phase == "switch"
    ]
    if not failures or not rb_switch:
        raise RuntimeError(f"journal of {result.deployment_id} lacks the failure or rb-switch")
    first = min(e.ts for e in failures)
    back = rb_switch[0].ts
    return {
        "n": n,
        "failed_steps": len(failures),
        "failed_step": failures[0].data.get("step"),
        "to_old_release": back - first,
        "switch_phase_to_old_release": back - switch_done[0].ts if switch_done else None,
        "to_rollback_finished": (rb_done[0].ts - first) if rb_done else None,
        "rollback_outcome": (result.rollback or {}).get("outcome"),
    }


def markdown(manual: list[dict[str, Any]], failed: list[dict[str, Any]]) -> str:
    done = [r for r in manual if "skipped" not in r]
    lines = [
        '### Manual rollback (`engine.rollback(id, "bench")`) after v1 -> v2, batches ["100%"]',
        "",
        "| N | rollback total (s) | alarm -> v1 serving (s) | per host (ms) | outcome"
        " | hosts on v1 after | setup: deploy v1 (s) | setup: deploy v2 (s) |",
        "|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in done:
        serving = r.get("alarm_to_serving")
        lines.append(
            f"| {r['n']} | {r['total']:.2f} | {'-' if serving is None else f'{serving:.2f}'}"
            f" | {1000 * r['total'] / r['n']:.0f} | {r['outcome']}"
            f" | {r['hosts_on_old_release']}/{r['n']}"
            f" | {r['setup']['v1']:.1f} | {r['setup']['v2']:.1f} |"
        )
    for r in manual:
        if "skipped" in r:
            lines.append(f"| {r['n']} | skipped: {r['skipped']} | | | | | | |")
    if done:
        lines += [
            "",
            "Per phase (seconds):",
            "",
            "| phase | " + " | ".join(f"N={r['n']}" for r in done) + " |",
            "|---|" + "---:|" * len(done),
        ]
        for name, _title in ROLLBACK_PHASES:
            cells = []
            for r in done:
                sec = r["phases"].get(name)
                status = r["phase_status"].get(name, "")
                cell = "-" if sec is None else f"{sec:.3f}"
                cells.append(cell + (f" ({status})" if status and status != "succeeded" else ""))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "### Failed check after the switch -> traffic on the old release (automatic rollback)",
        "",
        "v2's `reload` fails on every host right after its switch; times from the journal.",
        "",
        "| N | failing steps | first failed step -> rb-switch done (s)"
        " | switch phase failed -> rb-switch done (s) | first failed step -> rollback done (s)"
        " | rollback |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for r in failed:
        sw = r["switch_phase_to_old_release"]
        done_s = r["to_rollback_finished"]
        lines.append(
            f"| {r['n']} | {r['failed_steps']} ({r['failed_step']}) | {r['to_old_release']:.2f}"
            f" | {'-' if sw is None else f'{sw:.2f}'}"
            f" | {'-' if done_s is None else f'{done_s:.2f}'} | {r['rollback_outcome']} |"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sshd = SSHServer(root=work / "sshd").start()
    try:
        manual = [
            await manual_rollback(sshd, n, work, args.setup_budget, args.validate_setup)
            for n in args.hosts
        ]
        failed = [await failed_check(sshd, n, work) for n in FAILED_CHECK_NS]
    finally:
        sshd.stop()
    return {"manual": manual, "failed_check": failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--setup-budget", type=float, default=180.0)
    parser.add_argument(
        "--validate-setup",
        action="store_true",
        help="run the pre-deployment checks in the setup deployments too (slow at 50 hosts)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    run_and_report(
        lambda work: main_async(args, work),
        prefix="portal-ops-bench-rollback-",
        as_json=args.json,
        render=lambda out: markdown(out["manual"], out["failed_check"]),
    )


if __name__ == "__main__":
    main()
