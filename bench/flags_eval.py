"""In-process flag evaluations per second on one core, side by side with the Unleash
Python client (UnleashClient, Rust engine yggdrasil) on the same flags.

Run by hand::

    python bench/flags_eval.py            # add --json for machine-readable output

It starts its own redis-server on a free loopback port (the FlagClient loads the flags
from Redis as an app would, then evaluates with no network call), pins itself to one CPU,
and runs each scenario over 10,000 companies, best of several rounds.

The Unleash comparison runs when UnleashClient is importable; it is not a dependency of
portal-ops. To include it without touching the project's environment::

    pip install --target /tmp/unleash-pkgs UnleashClient==6.9.1
    PYTHONPATH=/tmp/unleash-pkgs python bench/flags_eval.py

Both clients are also checked to give the same answer for every company (Unleash
``flexibleRollout`` with ``stickiness=companyId`` and ``groupId`` = the flag name).

``--check-vectors`` (needs UnleashClient) recomputes, with Unleash's own client, the
expected answers written in tests/test_flags_unleash_vectors.py, and evaluates the
document `feature export --unleash` writes for the flags of tests/test_flags_unleash_io.py
with UnleashClient for 10,000 contexts against portal-ops' answers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.flags.client import FlagClient  # noqa: E402
from backend.flags.evaluate import evaluate  # noqa: E402
from backend.flags.model import Context  # noqa: E402
from backend.flags.service import FlagService  # noqa: E402
from backend.flags.unleash import parse_strategy  # noqa: E402
from tests.fixtures.redis_server import RedisServer  # noqa: E402

COMPANIES = 10_000
ROUNDS = 7
PASSES = 5
PREFIX = "bench"
ON_OVERRIDES = [f"company-{i}" for i in range(0, 1000, 20)]  # 50 forced on
OFF_OVERRIDES = [f"company-{i}" for i in range(5, 1000, 20)]  # 50 forced off

PLANS = ["pro", "enterprise", "pro", "free"]  # the constraint keeps 3 companies in 4
# name -> (percentage, company overrides?)
FLAGS: dict[str, tuple[int, bool]] = {
    "ui-improvements": (50, False),  # a percentage split: the hashing path
    "new-billing": (25, True),  # 100 company overrides, then a split
    "mobile-nav": (100, False),  # fully on: no hashing
    "Feature.TargetedCheckout": (50, False),  # plan IN [pro, enterprise], then 50 %
}
CONSTRAINED = {"Feature.TargetedCheckout"}
PLAN_CONSTRAINT = {"contextName": "plan", "operator": "IN", "values": ["pro", "enterprise"]}


def pin_one_core() -> str:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned (sched_setaffinity unavailable)"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measure(fn: Callable[[], None], evaluations: int) -> float:
    """Evaluations per second of the best of ROUNDS timed runs (as ``timeit`` reports:
    the least disturbed run), each run being PASSES passes over the companies."""
    fn()
    rates = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(PASSES):
            fn()
        rates.append(PASSES * evaluations / (time.perf_counter() - started))
    return max(rates)


def setup_flags(service: FlagService) -> None:
    for name, (pct, overrides) in FLAGS.items():
        service.create(name)
        if name in CONSTRAINED:
            rollout = {
                "name": "flexibleRollout",
                "parameters": {"rollout": str(pct), "stickiness": "company", "groupId": name},
                "constraints": [PLAN_CONSTRAINT],
            }
            service.set_strategies(name, [parse_strategy(rollout, name)])
        service.enable(name, pct)
        if overrides:
            for company in ON_OVERRIDES:
                service.override(name, "company", company, True)
            for company in OFF_OVERRIDES:
                service.override(name, "company", company, False)


def unleash_features() -> dict[str, Any]:
    """The same flags as Unleash features (the /api/client/features document)."""
    features = []
    for name, (pct, overrides) in FLAGS.items():
        rollout = {
            "name": "flexibleRollout",
            "parameters": {"rollout": str(pct), "stickiness": "companyId", "groupId": name},
            "constraints": [],
        }
        strategies = [rollout]
        if name in CONSTRAINED:
            rollout["constraints"] = [PLAN_CONSTRAINT]
        if overrides:
            rollout["constraints"] = [
                {"contextName": "companyId", "operator": "NOT_IN", "values": OFF_OVERRIDES}
            ]
            strategies.insert(
                0,
                {
                    "name": "flexibleRollout",
                    "parameters": {"rollout": "100", "stickiness": "companyId", "groupId": name},
                    "constraints": [
                        {"contextName": "companyId", "operator": "IN", "values": ON_OVERRIDES}
                    ],
                },
            )
        features.append(
            {"name": name, "enabled": True, "strategies": strategies, "type": "release"}
        )
    return {"version": 2, "features": features}


def unleash_client(tmp: str) -> Any | None:
    try:
        from UnleashClient import UnleashClient
        from UnleashClient.cache import FileCache
    except ImportError:
        return None
    cache = FileCache("portal-ops-bench", directory=tmp)
    cache.bootstrap_from_dict(unleash_features())
    client = UnleashClient(
        url="http://127.0.0.1:9/api",  # never contacted: fetch_toggles=False
        app_name="portal-ops-bench",
        disable_metrics=True,
        disable_registration=True,
        cache=cache,
    )
    client.initialize_client(fetch_toggles=False)
    return client


def run() -> dict[str, Any]:
    pinned = pin_one_core()
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "core": pinned,
        "companies": COMPANIES,
        "rounds": ROUNDS,
        "scenarios": {},
    }
    ids = [f"company-{i}" for i in range(COMPANIES)]
    ctxs = [
        Context(company=c, user=f"user-{i}", properties={"plan": PLANS[i % 4]})
        for i, c in enumerate(ids)
    ]
    with tempfile.TemporaryDirectory() as tmp, RedisServer(root=Path(tmp) / "redis") as redis:
        service = FlagService(Path(tmp) / "journal.db", redis.url, PREFIX)
        setup_flags(service)
        client = FlagClient(redis.url, PREFIX, flush_interval=5.0)
        if not client.start(5):
            raise SystemExit("FlagClient did not load the flags from Redis")
        flags = client.flags()
        unleash = unleash_client(tmp)
        s = results["scenarios"]
        for name in FLAGS:
            flag = flags[name]

            def pure(flag: Any = flag) -> None:
                for ctx in ctxs:
                    evaluate(flag, ctx)

            def ours(name: str = name) -> None:
                is_enabled = client.is_enabled
                for ctx in ctxs:
                    is_enabled(name, ctx)

            row = {
                "evaluate() (pure function)": measure(pure, COMPANIES),
                "FlagClient.is_enabled (usage counted)": measure(ours, COMPANIES),
            }
            if unleash is not None:
                u_ctxs = [
                    {"userId": c.user, "properties": {"companyId": c.company, **c.properties}}
                    for c in ctxs
                ]

                def theirs(name: str = name, u_ctxs: list[dict[str, Any]] = u_ctxs) -> None:
                    is_enabled = unleash.is_enabled
                    for uctx in u_ctxs:
                        is_enabled(name, uctx)

                row["UnleashClient.is_enabled"] = measure(theirs, COMPANIES)
                agree = sum(
                    client.is_enabled(name, ctx) == unleash.is_enabled(name, uctx)
                    for ctx, uctx in zip(ctxs, u_ctxs, strict=True)
                )
                row["same answer as Unleash"] = f"{agree}/{COMPANIES}"
            s[name] = row
        client.count_usage = False
        s["ui-improvements"]["FlagClient.is_enabled (counting off)"] = measure(
            lambda: [client.is_enabled("ui-improvements", ctx) for ctx in ctxs], COMPANIES
        )
        client.close()
        if unleash is not None:
            unleash.destroy()
        else:
            results["unleash"] = (
                "skipped: UnleashClient is not installed (pip install --target"
                " /tmp/unleash-pkgs UnleashClient==6.9.1, then PYTHONPATH=/tmp/unleash-pkgs)"
            )
        service.close()
    return results


def unleash_from_document(doc: dict[str, Any], tmp: str) -> Any:
    """UnleashClient serving ``doc`` (client API shape), never contacting a server."""
    from UnleashClient import UnleashClient
    from UnleashClient.cache import FileCache

    cache = FileCache("portal-ops-vectors", directory=tmp)
    cache.bootstrap_from_dict(doc)
    client = UnleashClient(
        url="http://127.0.0.1:9/api",
        app_name="portal-ops-vectors",
        disable_metrics=True,
        disable_registration=True,
        cache=cache,
    )
    client.initialize_client(fetch_toggles=False)
    return client


def client_document(export: dict[str, Any]) -> dict[str, Any]:
    """Unleash's export as the client API document its SDKs bootstrap from."""
    enabled = {e["featureName"]: e["enabled"] for e in export["featureEnvironments"]}
    features = []
    for f in export["features"]:
        strategies = sorted(
            (s for s in export["featureStrategies"] if s["featureName"] == f["name"]),
            key=lambda s: s["sortOrder"],
        )
        features.append(
            {
                "name": f["name"],
                "enabled": enabled[f["name"]],
                "strategies": [
                    {k: s[k] for k in ("name", "parameters", "constraints")} for s in strategies
                ],
            }
        )
    return {"version": 2, "features": features}


def check_vectors() -> int:
    """Unleash's own client against the test vectors and the export; 0 when all agree."""
    from backend.flags.unleash import export_document
    from tests import test_flags_unleash_io as io
    from tests import test_flags_unleash_vectors as v

    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        client = unleash_from_document(v.document(), tmp)

        def answers(name: str, contexts: list[dict[str, Any]]) -> str:
            return "".join("1" if client.is_enabled(name, c) else "0" for c in contexts)

        groups = [
            (v.EXPECTED_OPERATORS, lambda n: v.OP_CONTEXTS),
            (v.EXPECTED_MORE, lambda n: v.MORE_CONTEXTS),
            (
                v.EXPECTED_ROLLOUTS,
                lambda n: [v.rollout_ctx(v.ROLLOUT_FIELD[n], i) for i in range(40)],
            ),
        ]
        checked = 0
        for expected, contexts in groups:
            for name, want in expected.items():
                got = answers(name, contexts(name))
                checked += 1
                if got != want:
                    failures += 1
                    print(f"vector {name}: Unleash {got}, test expects {want}")
        print(f"{checked - failures}/{checked} vector groups agree with UnleashClient")
        client.destroy()

        service = FlagService(Path(tmp) / "journal.db", None)
        io.populate(service)
        flags = service.flags()
        service.close()
        doc = client_document(export_document(flags))
        client = unleash_from_document(doc, tmp)
        callers = io.contexts()
        differ = 0
        for flag in flags:
            for ours, theirs in callers:
                if evaluate(flag, ours).value != client.is_enabled(flag.name, theirs):
                    differ += 1
        total = len(flags) * len(callers)
        print(f"export: {total - differ}/{total} answers of UnleashClient equal portal-ops'")
        client.destroy()
        failures += differ
    return 1 if failures else 0


def main() -> None:
    global ROUNDS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--rounds", type=int, default=7, help="timed runs, best kept (default 7)")
    parser.add_argument(
        "--check-vectors",
        action="store_true",
        help="recompute the test vectors and the export's answers with UnleashClient",
    )
    args = parser.parse_args()
    if args.check_vectors:
        raise SystemExit(check_vectors())
    ROUNDS = max(1, args.rounds)
    results = run()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"Python {results['python']} on {results['cpu']} ({results['core']})")
    print(
        f"{results['companies']} companies x {PASSES} passes per run,"
        f" best of {results['rounds']} runs\n"
    )
    for flag, row in results["scenarios"].items():
        pct, overrides = FLAGS[flag]
        kind = f"{pct}%" + (", 100 company overrides" if overrides else "")
        if flag in CONSTRAINED:
            kind += ", constraint plan IN [pro, enterprise]"
        print(f"{flag} ({kind})")
        for what, value in row.items():
            shown = f"{value:>13,.0f} /s" if isinstance(value, float) else f"{value:>16}"
            print(f"  {what:<40} {shown}")
    if "unleash" in results:
        print(f"\nUnleash: {results['unleash']}")


if __name__ == "__main__":
    main()
