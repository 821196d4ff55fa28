"""Emergency-disable propagation latency to 10 subscribed FlagClients (p50/p99).

Run by hand::

    python bench/flags_propagation.py          # --clients 10 --rounds 50 --json

It starts its own redis-server on a free loopback port and 10 app processes, each with a
FlagClient subscribed to the flag channel. Each round the bastion side calls
``FlagService.emergency_disable()`` (SQLite commit, audit entry, one Lua script that
writes the keys and publishes) and every app reports the moment its client serves the
kill switch; then ``restore()`` the same way. Latency = app's moment - the moment before
the call, both on CLOCK_MONOTONIC, which Linux shares between processes.

A few rounds also go through the real CLI (``python -m tui.cli feature
emergency-disable``), whose latency includes starting Python and loading the config.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.flags.service import FlagService  # noqa: E402
from tests.fixtures.redis_server import RedisServer  # noqa: E402

PREFIX = "bench"

APP = r"""
import sys, threading, time
from backend.flags.client import FlagClient
client = FlagClient(sys.argv[1], sys.argv[2], count_usage=False)
state = {"emergency": None}
lock = threading.Lock()
def say(line):
    with lock:  # one write per line: the listener thread and the main thread both print
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
def on_event(event, names):
    now = time.monotonic_ns()
    active = client.emergency_state.active
    with lock:
        changed = active != state["emergency"]
        state["emergency"] = active
    if changed:
        say(f"{sys.argv[3]} {int(active)} {now}")
client.add_listener(on_event)
client.start(10)
on_event("ready", [])
say(f"{sys.argv[3]} ready 0")
sys.stdin.read()  # until the bench closes our stdin
client.close(flush=False)
"""


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(samples_ms),
        "p50_ms": round(statistics.median(samples_ms), 2),
        "p95_ms": round(percentile(samples_ms, 95), 2),
        "p99_ms": round(percentile(samples_ms, 99), 2),
        "max_ms": round(max(samples_ms), 2),
    }


class Apps:
    def __init__(self, url: str, count: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-c", APP, url, PREFIX, str(i)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(count)
        ]
        self.events: queue.Queue[tuple[int, str, int]] = queue.Queue()
        for proc in self.procs:
            threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            parts = line.split()
            if len(parts) == 3:
                self.events.put((int(parts[0]), parts[1], int(parts[2])))

    def wait(self, what: str, timeout: float = 20.0) -> dict[int, int]:
        """Each app's timestamp (ns) for ``what``: 'ready', '1' (kill switch on), '0' (off)."""
        seen: dict[int, int] = {}
        deadline = time.monotonic() + timeout
        while len(seen) < len(self.procs):
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"only {len(seen)}/{len(self.procs)} apps saw {what!r}")
            try:
                app, got, ts = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if got == what:
                seen[app] = ts
        return seen

    def close(self) -> None:
        for proc in self.procs:
            if proc.stdin:
                proc.stdin.close()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def write_config(tmp: Path, url: str) -> Path:
    path = tmp / "portal-ops.toml"
    path.write_text(
        f'[portal]\nrepository = "https://git.example.invalid/p.git"\ndeploy_path = "/srv/p"\n'
        f'[[hosts]]\nname = "web-1"\naddress = "127.0.0.1"\ntransport = "local"\n'
        f'[redis]\nurl = "{url}"\nprefix = "{PREFIX}"\n[state]\ndir = "{tmp / "state"}"\n'
    )
    return path


def run(clients: int, rounds: int, cli_rounds: int) -> dict[str, Any]:
    off_ms: list[float] = []
    on_ms: list[float] = []
    call_ms: list[float] = []
    cli_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp_name, RedisServer(root=Path(tmp_name) / "r") as redis:
        tmp = Path(tmp_name)
        config = write_config(tmp, redis.url)
        service = FlagService(tmp / "state" / "journal.db", redis.url, PREFIX)
        for i in range(20):
            service.create(f"flag-{i}")
            service.enable(f"flag-{i}", 10 * (i % 10) + 10)
        apps = Apps(redis.url, clients)
        try:
            apps.wait("ready")  # each app reported "0" (flags served) before "ready"
            for r in range(rounds):
                t0 = time.monotonic_ns()
                service.emergency_disable(f"bench round {r}")
                called = time.monotonic_ns()
                seen = apps.wait("1")
                off_ms += [(ts - t0) / 1e6 for ts in seen.values()]
                call_ms.append((called - t0) / 1e6)
                time.sleep(0.02)
                t0 = time.monotonic_ns()
                service.restore(reason=f"bench round {r}")
                on_ms += [(ts - t0) / 1e6 for ts in apps.wait("0").values()]
                time.sleep(0.02)
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            for r in range(cli_rounds):
                t0 = time.monotonic_ns()
                subprocess.run(
                    [sys.executable, "-m", "tui.cli", "feature", "emergency-disable",
                     f"--reason=cli round {r}", "--config", str(config)],
                    cwd=ROOT, env=env, check=True, capture_output=True,
                )  # fmt: skip
                cli_ms += [(ts - t0) / 1e6 for ts in apps.wait("1").values()]
                service.restore(reason="cli round")
                apps.wait("0")
        finally:
            apps.close()
            service.close()
    out: dict[str, Any] = {
        "clients": clients,
        "rounds": rounds,
        "emergency_disable": summary(off_ms),
        "restore": summary(on_ms),
        "service_call_only": summary(call_ms),
    }
    if cli_ms:
        out["emergency_disable_via_cli_process"] = summary(cli_ms)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--cli-rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    res = run(args.clients, args.rounds, args.cli_rounds)
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"{res['clients']} subscribed FlagClients (one process each), {res['rounds']} rounds")
    labels = {
        "emergency_disable": "emergency-disable -> every app serves it",
        "restore": "restore -> every app serves flags again",
        "service_call_only": "FlagService.emergency_disable() call itself",
        "emergency_disable_via_cli_process": "via `portal-ops feature emergency-disable`",
    }
    for key, label in labels.items():
        if key in res:
            s = res[key]
            print(
                f"  {label:<45} n={s['n']:<4} p50 {s['p50_ms']:>7.2f} ms  p95 {s['p95_ms']:>7.2f}"
                f" ms  p99 {s['p99_ms']:>7.2f} ms  max {s['max_ms']:>7.2f} ms"
            )


if __name__ == "__main__":
    main()
