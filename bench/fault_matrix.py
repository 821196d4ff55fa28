"""The fault matrix as a table: scenario, recovery, converged, seconds.

Each scenario (tests/engine/matrix.py) kills portal-ops with SIGKILL at the start of a
phase 2 to 9, after phase 9, or inside the commands of deploy phases 4, 5, 6 or rollback
phases 4, 5, kills the SSH link at the same boundaries or inside the same commands, or lets
a migrate time out; then recovers on its own, by
``rollback`` from a second state dir (no journal: the hosts' records) or by ``resume`` from
the first, and checks convergence:
one release on every host, the database matching it, no process of the old run left, the
lock released, the outcome truthful. Seconds: from the copy of the v1 template to the end
of the recovery.

Every scenario (40), where the test suite runs a subset of 19 (``--suite``). Run by hand
(about 3 minutes on a busy 2-core machine)::

    .venv/bin/python bench/fault_matrix.py [--only SUBSTRING] [--suite] [--json]

Everything runs on 127.0.0.1 through one real OpenSSH server; temp dirs are removed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import run_and_report  # noqa: E402
from tests.engine.matrix import SCENARIOS, deploy_template, run_scenario  # noqa: E402
from tests.fixtures.sshd import SSHServer  # noqa: E402


async def measure(work: Path, only: str, suite_only: bool = False) -> dict[str, Any]:
    sshd = SSHServer(root=work / "sshd").start()
    try:
        template = work / "template"
        template.mkdir()
        cfg, old = await deploy_template(sshd, template)
        rows = []
        for index, scenario in enumerate(SCENARIOS):
            if only and only not in scenario.name:
                continue
            if suite_only and not scenario.suite:
                continue
            verdict = await run_scenario(sshd, template, cfg, old, work / f"case-{index}", scenario)
            rows.append(
                {
                    "scenario": scenario.name,
                    "recovery": scenario.recovery,
                    "converged": verdict.converged,
                    "suite": scenario.suite,
                    "seconds": round(verdict.seconds, 1),
                    "why": verdict.why,
                }
            )
        return {"rows": rows}
    finally:
        sshd.stop()


def render(out: dict[str, Any]) -> str:
    lines = [
        "| scenario | recovery | converged | seconds |",
        "|---|---|---|---:|",
    ]
    for row in out["rows"]:
        mark = "yes" if row["converged"] else f"NO: {row['why']}"
        lines.append(f"| {row['scenario']} | {row['recovery']} | {mark} | {row['seconds']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="Scenarios whose name contains this.")
    parser.add_argument("--suite", action="store_true", help="Only the test suite's subset.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    run_and_report(
        lambda work: measure(work, args.only, args.suite),
        prefix="fault-matrix-",
        as_json=args.json,
        render=render,
    )


if __name__ == "__main__":
    main()
