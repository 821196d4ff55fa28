"""Fan-out over SSH: one command on N hosts, and a full deployment to N hosts.

Hosts are SSH logins on loopback: N :class:`SSHHost` objects (N = 1, 10, 50), each with
its own connection, all to one real OpenSSH server started for the run
(tests/fixtures/sshd.py). For each N, five repetitions of:

1. connect all N hosts at once (``connect_all``) -> connect wall time;
2. run the command (default ``true``) on all N in parallel (``asyncio.gather``) over the
   open connections -> command wall time;
3. close the connections.

Reported: best and median of the five, and the per-host overhead (median wall / N).
If a simultaneous connect of N fails (sshd MaxStartups), the run retries in chunks of
10 and says so in the table.

Then a full real deployment (``Engine.deploy``, generic recipe, the engine tests' tiny
git repo: tests/engine/helpers.py) to N = 1 and 10 hosts (deploy paths in a temp dir):
a first deployment (v1) and an upgrade with one migration (v2), in seconds.

Run by hand (1.5-2.5 min on a busy 2-core machine)::

    .venv/bin/python bench/deploy_fanout.py [--reps 5] [--command true] [--json]

Everything runs on 127.0.0.1; sshd and every temp dir are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.config import parse_config  # noqa: E402
from backend.engine import Engine  # noqa: E402
from backend.journal import Journal  # noqa: E402
from backend.transport import connect_all  # noqa: E402
from backend.transport.ssh import SSHHost, SSHOptions  # noqa: E402
from bench.harness import run_and_report  # noqa: E402
from tests.engine.helpers import make_repo, ssh_config  # noqa: E402
from tests.fixtures.sshd import SSHServer  # noqa: E402

FANOUT_NS = (1, 10, 50)
DEPLOY_NS = (1, 10)
CHUNK = 10


def make_hosts(sshd: SSHServer, n: int) -> list[SSHHost]:
    options = SSHOptions(
        known_hosts=str(sshd.known_hosts),
        identity_files=[str(sshd.client_key)],
        use_agent=False,
        connect_timeout=10,
        command_timeout=30,
    )
    return [
        SSHHost(f"host-{i}", sshd.host, sshd.port, sshd.user, options=options)
        for i in range(1, n + 1)
    ]


async def connect(hosts: list[SSHHost], chunked: bool) -> dict[str, Any]:
    if not chunked:
        return await connect_all(hosts)  # type: ignore[arg-type]
    failures: dict[str, Any] = {}
    for i in range(0, len(hosts), CHUNK):
        failures.update(await connect_all(hosts[i : i + CHUNK]))  # type: ignore[arg-type]
    return failures


async def one_round(sshd: SSHServer, n: int, command: str, chunked: bool) -> tuple[float, float]:
    hosts = make_hosts(sshd, n)
    try:
        t0 = time.perf_counter()
        failures = await connect(hosts, chunked)
        t_connect = time.perf_counter() - t0
        if failures:
            raise RuntimeError(
                f"{len(failures)}/{n} connects failed: {next(iter(failures.values()))}"
            )
        t0 = time.perf_counter()
        results = await asyncio.gather(*(h.run(command) for h in hosts))
        t_cmd = time.perf_counter() - t0
        bad = [r for r in results if not r.ok]
        if bad:
            raise RuntimeError(f"{len(bad)}/{n} commands failed: {bad[0].tail()}")
        return t_connect, t_cmd
    finally:
        await asyncio.gather(*(h.close() for h in hosts), return_exceptions=True)


async def fanout(sshd: SSHServer, n: int, command: str, reps: int) -> dict[str, Any]:
    chunked = False
    note = ""
    connects: list[float] = []
    cmds: list[float] = []
    for _ in range(reps):
        try:
            t_connect, t_cmd = await one_round(sshd, n, command, chunked)
        except RuntimeError as exc:
            if chunked or n <= CHUNK:
                raise
            chunked = True
            note = f"simultaneous connect failed ({exc}); connected in chunks of {CHUNK}"
            connects, cmds = [], []
            t_connect, t_cmd = await one_round(sshd, n, command, chunked)
        connects.append(t_connect)
        cmds.append(t_cmd)
    return {
        "n": n,
        "connect_best": min(connects),
        "connect_median": statistics.median(connects),
        "command_best": min(cmds),
        "command_median": statistics.median(cmds),
        "connect_per_host_ms": 1000 * statistics.median(connects) / n,
        "command_per_host_ms": 1000 * statistics.median(cmds) / n,
        "connect_mode": "chunks of 10" if chunked else "all at once",
        "note": note,
    }


def engine_for(cfg: dict[str, Any]) -> Engine:
    config = parse_config(cfg)
    return Engine(config, journal=Journal(Path(config.state.dir) / "journal.db"))


async def deploy(sshd: SSHServer, n: int, work: Path) -> dict[str, Any]:
    root = work / f"deploy-{n}"
    repo = make_repo(root)
    cfg = ssh_config(sshd, root, repo, hosts=n)
    out: dict[str, Any] = {"n": n, "batches": cfg["rollout"]["batches"]}
    for revision in ("v1", "v2"):
        t0 = time.perf_counter()
        result = await engine_for(cfg).deploy(revision=revision)
        out[revision] = time.perf_counter() - t0
        if not result.ok:
            raise RuntimeError(f"deploy {revision} to {n} host(s) {result.outcome}: {result.error}")
        out[f"{revision}_phases"] = {p.name: round(p.seconds, 3) for p in result.phases}
    return out


def markdown(fan: list[dict[str, Any]], dep: list[dict[str, Any]], command: str, reps: int) -> str:
    lines = [
        f"### `{command}` on N hosts (best / median of {reps})",
        "",
        "| N | connect best (s) | connect median (s) | connect per host (ms) | command best (s)"
        " | command median (s) | command per host (ms) | connect mode |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in fan:
        lines.append(
            f"| {r['n']} | {r['connect_best']:.3f} | {r['connect_median']:.3f}"
            f" | {r['connect_per_host_ms']:.1f} | {r['command_best']:.3f}"
            f" | {r['command_median']:.3f} | {r['command_per_host_ms']:.2f} | {r['connect_mode']} |"
        )
    notes = [r["note"] for r in fan if r["note"]]
    lines += ["", *(f"Note: {n}" for n in notes)] if notes else []
    lines += [
        "",
        "### Full deployment (Engine.deploy, generic recipe, tiny repo), seconds",
        "",
        "| N | batches | first deploy v1 (s) | upgrade v2 + 1 migration (s) |",
        "|---:|---|---:|---:|",
    ]
    for r in dep:
        lines.append(f"| {r['n']} | {r['batches']} | {r['v1']:.2f} | {r['v2']:.2f} |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sshd = SSHServer(root=work / "sshd").start()
    try:
        fan = [await fanout(sshd, n, args.command, args.reps) for n in FANOUT_NS]
        dep = [await deploy(sshd, n, work) for n in DEPLOY_NS]
    finally:
        sshd.stop()
    return {"fanout": fan, "deploy": dep}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--command", default="true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    run_and_report(
        lambda work: main_async(args, work),
        prefix="portal-ops-bench-fanout-",
        as_json=args.json,
        render=lambda out: markdown(out["fanout"], out["deploy"], args.command, args.reps),
    )


if __name__ == "__main__":
    main()
