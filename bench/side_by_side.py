"""portal-ops beside a bare asyncssh script and Fabric 3: the same work, interleaved, in
one run, against one loopback sshd.

Every measurement is its own Python process (``--one TOOL WORK N``), so each figure has a
whole-process wall time, CPU time (user+sys from its rusage; less sensitive to the
machine's load than wall time) and peak memory (the child's own VmHWM: its rusage would
count the driver's pages it had before ``exec``) as well as the time of its timed section
(in-process) and the CPU its start-up took (interpreter and imports). Within a repetition
the tools take turns in a rotating order. Every tool checks the server's host key against
the same known_hosts file (Fabric is told to reject unknown keys, it adds them by default)
and logs in with the same key; the sshd fixture gives sessions an empty HOME, so no tool
pays for shell rc files.

The work:

- ``fanout``: connect N hosts and run ``true`` on each (in-process: connect included);
- ``first``: a first deployment to N fresh hosts;
- ``upgrade``: a deployment over the live one (portal-ops: checks skipped, or ``upgrade+checks``
  with its pre- and post-deployment checks);
- ``rollback``: back to the release live before.

The peers run a minimal Capistrano-style deployment, 6 commands per host (mkdir, git clone,
link shared, write a marker, ``ln -s`` + ``mv -T``, readlink) and rollback (2 per host);
portal-ops runs its full engine (lock, probes, host records, backups, release log, checks),
with ``rollout.concurrency`` = N and ``ssh.max_connections`` = N so that every tool works
on all hosts at once and logs in to all at once (the peers have no login gate; portal-ops's
default of 5 logins in flight, kept under OpenSSH's ``MaxStartups 10``, costs about 0.2 s
at 50 hosts on loopback; the bench's sshd allows 200).

``--rtt 0,20,50`` repeats the works with the sshd reached through ``bench/delay_relay.py``,
a TCP relay on 127.0.0.1 that delays every chunk by RTT/2 each way (``tc netem`` is what
one would use, but this container's kernel has no ``sch_netem``): the deployment where
round trips dominate, as on a real network. ``--works small`` keeps it to 10 hosts.

Run by hand (about 4 min for 3 repetitions on a quiet 2-core machine)::

    .venv/bin/python bench/side_by_side.py [--reps 3] [--small 10] [--big 50] [--json]
        [--works fanout,small,big,checks] [--tools portal-ops,asyncssh,fabric] [--rtt 0]

``SIDE_BY_SIDE_TRACEMALLOC=PREFIX`` writes where portal-ops's memory was at its peak, per
work, to ``PREFIX.WORK-N``; ``SIDE_BY_SIDE_RSS=PREFIX`` its RSS and peak at each phase's
start and end; ``SIDE_BY_SIDE_MODULES=FILE`` appends the modules each child
loaded (for a look, not for the figures).

Needs the bench extra (``pip install -e '.[bench]'``: Fabric). Everything runs on 127.0.0.1;
sshd and the temp dir are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# a child measuring another checkout (--base) imports that checkout's portal-ops
sys.path.insert(0, os.environ.get("SIDE_BY_SIDE_ROOT") or str(ROOT))

TOOLS: tuple[str, ...] = ("portal-ops", "asyncssh", "fabric")

# -- the peers' deployment: what a minimal Capistrano-style script runs on each host -------


def peer_deploy(path: str, repo: str, tag: str, release: str) -> list[str]:
    q = shlex.quote
    rel = f"{path}/releases/{release}"
    return [
        f"mkdir -p {q(path + '/releases')} {q(path + '/shared')}",
        f"git clone -q --depth 1 --branch {q(tag)} {q('file://' + repo)} {q(rel)}",
        f"touch {q(path + '/shared/db.txt')} && ln -sfn {q(path + '/shared/db.txt')} {q(rel + '/db.txt')}",
        f"printf '%s\\n' {q(release)} > {q(rel + '/REVISION')}",
        f"ln -sfn {q('releases/' + release)} {q(path + '/current.tmp')}"
        f" && mv -T {q(path + '/current.tmp')} {q(path + '/current')}",
        f"readlink {q(path + '/current')}",
    ]


def peer_rollback(path: str, release: str) -> list[str]:
    q = shlex.quote
    return [
        f"ln -sfn {q('releases/' + release)} {q(path + '/current.tmp')}"
        f" && mv -T {q(path + '/current.tmp')} {q(path + '/current')}",
        f"readlink {q(path + '/current')}",
    ]


# -- one measurement, in its own process ----------------------------------------------------


def host_paths(base: Path, n: int) -> list[str]:
    return [str(base / f"host-{i}") for i in range(1, n + 1)]


def peer_commands(args: argparse.Namespace) -> list[list[str]]:
    paths = host_paths(Path(args.dir), args.n)
    if args.work == "fanout":
        return [["true"] for _ in paths]
    if args.work == "rollback":
        return [peer_rollback(p, args.previous) for p in paths]
    return [peer_deploy(p, args.repo, args.tag, args.release) for p in paths]


async def run_asyncssh(args: argparse.Namespace, sshd: dict[str, Any]) -> None:
    import asyncssh

    async def one(commands: list[str]) -> None:
        async with asyncssh.connect(
            sshd["host"],
            port=sshd["port"],
            username=sshd["user"],
            known_hosts=sshd["known_hosts"],
            client_keys=[sshd["client_key"]],
            agent_path=None,
        ) as conn:
            for command in commands:
                await conn.run(command, check=True)

    await asyncio.gather(*(one(c) for c in peer_commands(args)))


def run_fabric(args: argparse.Namespace, sshd: dict[str, Any]) -> None:
    from fabric import Connection
    from paramiko import RejectPolicy

    def one(commands: list[str]) -> None:
        conn = Connection(
            sshd["host"],
            user=sshd["user"],
            port=sshd["port"],
            connect_kwargs={
                "key_filename": sshd["client_key"],
                "look_for_keys": False,
                "allow_agent": False,
            },
        )
        conn.client.load_host_keys(sshd["known_hosts"])
        conn.client.set_missing_host_key_policy(RejectPolicy())
        with conn:
            for command in commands:
                conn.run(command, hide=True)

    work = peer_commands(args)
    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        list(pool.map(one, work))


async def run_portal_ops(args: argparse.Namespace, sshd: dict[str, Any]) -> dict[str, Any]:
    if args.work == "fanout":
        from backend.transport import connect_all
        from backend.transport.ssh import SSHHost, SSHOptions

        options = SSHOptions(
            known_hosts=sshd["known_hosts"],
            identity_files=[sshd["client_key"]],
            use_agent=False,
            max_connections=args.n,  # all logins at once, as the peers do (see the docstring)
        )
        hosts = [
            SSHHost(f"h{i}", sshd["host"], sshd["port"], sshd["user"], options=options)
            for i in range(args.n)
        ]
        failures = await connect_all(hosts)
        assert not failures, failures
        results = await asyncio.gather(*(h.run("true") for h in hosts))
        assert all(r.ok for r in results)
        await asyncio.gather(*(h.close() for h in hosts))
        return {}
    from backend.config import parse_config
    from backend.engine import Engine
    from backend.journal import Journal

    config = parse_config(json.loads(Path(args.config).read_text()))
    engine = Engine(config, journal=Journal(Path(config.state.dir) / "journal.db"))
    if os.environ.get("SIDE_BY_SIDE_RSS"):  # the RSS at each phase's start and end
        out = f"{os.environ['SIDE_BY_SIDE_RSS']}.{args.work}-{args.n}"
        started = time.perf_counter()

        def phase_rss(event: Any) -> None:
            if event.kind in ("phase.started", "phase.finished"):
                with open(out, "a") as trace:
                    print(
                        f"{time.perf_counter() - started:6.2f}s {event.run:8s} {event.kind:15s}"
                        f" {event.phase or '':20s} RSS {own_rss_mb():5.1f} MB,"
                        f" peak {own_peak_mb():5.1f} MB",
                        file=trace,
                    )

        engine.bus.subscribe(phase_rss)
    if args.work == "rollback":
        result = await engine.rollback(None, "bench")
        assert result.outcome == "succeeded", result.outcome
        return {}
    result = await engine.deploy(revision=args.tag, skip_validation=not args.checks)
    assert result.ok, result.error
    return {"release": result.release}


def one(args: argparse.Namespace) -> None:
    sshd = json.loads(Path(args.sshd).read_text())
    os.environ.setdefault("PORTAL_OPS_OPERATOR", "bench")
    # imports before the clock: the in-process figure is the work; start-up is in the
    # whole-process figure
    if args.tool == "portal-ops":
        import backend.transport.ssh

        if args.work != "fanout":
            import backend.engine  # noqa: F401
    elif args.tool == "asyncssh":
        import asyncssh  # noqa: F401
    else:
        import fabric  # noqa: F401
    imports_mb = own_peak_mb()
    imports_cpu = time.process_time()  # start-up: the interpreter and the imports, CPU
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if args.tool == "portal-ops" and os.environ.get("SIDE_BY_SIDE_TRACEMALLOC"):
        out = f"{os.environ['SIDE_BY_SIDE_TRACEMALLOC']}.{args.work}-{args.n}"
        asyncio.run(traced(run_portal_ops(args, sshd), out))
    elif args.tool == "portal-ops" and os.environ.get("SIDE_BY_SIDE_PROFILE"):
        import cProfile  # where this process's own CPU goes: for a look, not for the figures

        out = f"{os.environ['SIDE_BY_SIDE_PROFILE']}.{args.work}-{args.n}"
        with cProfile.Profile() as profile:
            extra = asyncio.run(run_portal_ops(args, sshd))
        profile.dump_stats(out)
    elif args.tool == "portal-ops":
        extra = asyncio.run(run_portal_ops(args, sshd))
    elif args.tool == "asyncssh":
        asyncio.run(run_asyncssh(args, sshd))
    else:
        run_fabric(args, sshd)
    seconds = time.perf_counter() - started
    if os.environ.get("SIDE_BY_SIDE_MODULES"):  # what the work imported, for a look
        with open(os.environ["SIDE_BY_SIDE_MODULES"], "a") as dump:
            dump.write(json.dumps({"argv": sys.argv[2:5], "modules": sorted(sys.modules)}) + "\n")
    peak = own_peak_mb()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": peak,
                "imports_mb": imports_mb,
                "imports_cpu": imports_cpu,
                **extra,
            }
        )
    )


async def traced(work: Any, out: str) -> None:
    """Run ``work`` under tracemalloc and write where the memory was at its peak (the
    snapshot taken when the traced size last grew by 2 %) to ``out``: what grows with
    the hosts, line by line. Slow: for a look, not for the figures."""
    import tracemalloc

    tracemalloc.start(8)
    best: list[Any] = [0, None]

    async def watch() -> None:
        while True:
            current = tracemalloc.get_traced_memory()[0]
            if current > best[0] * 1.02:
                best[:] = [current, tracemalloc.take_snapshot()]
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    try:
        await work
    finally:
        watcher.cancel()
    peak = tracemalloc.get_traced_memory()[1]
    lines = [f"traced peak {peak / 2**20:.1f} MB; snapshot at {best[0] / 2**20:.1f} MB"]
    if best[1] is not None:
        for stat in best[1].statistics("traceback")[:25]:
            lines.append(f"{stat.size / 2**20:6.2f} MB {stat.count:7d} blocks")
            lines += [f"      {frame}" for frame in stat.traceback.format()[-8:]]
    Path(out).write_text("\n".join(lines) + "\n")


def own_rss_mb() -> float:
    """This process's RSS now (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def own_peak_mb() -> float:
    """This process's peak RSS (VmHWM), in MB.

    Not the parent's ``wait4`` rusage: Linux carries the RSS a child had before ``exec``
    (the driver's pages, shared after ``fork``) into its ``ru_maxrss``, so every child
    would read at least the driver's size (about 51 MB here). VmHWM belongs to the address
    space ``exec`` created, so it is the child's own peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- the driver -----------------------------------------------------------------------------


SSHD_PID = 0  # the sshd listener: its reaped sessions' CPU is what the hosts paid


def sessions_cpu() -> float:
    """CPU seconds of the sshd listener's reaped children (cutime + cstime), once every
    session it had has ended: what the hosts paid so far, shell and commands included."""
    if not SSHD_PID:
        return 0.0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{SSHD_PID}/task/{SSHD_PID}/children").read_text().split()
        if not children:
            break
        time.sleep(0.01)
    fields = Path(f"/proc/{SSHD_PID}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


BASE: Path | None = None  # --base: another checkout, measured as "portal-ops (before)"
BEFORE = "portal-ops (before)"


def child(argv: list[str]) -> dict[str, Any]:
    """Run one measurement; its in-process seconds, whole-process wall and peak RSS."""
    root = ROOT
    if argv[0] == BEFORE and BASE is not None:
        root, argv = BASE, ["portal-ops", *argv[1:]]
    host_before = sessions_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--one", *argv],
        cwd=root,
        env={**os.environ, "SIDE_BY_SIDE_ROOT": str(root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    cpu = usage.ru_utime + usage.ru_stime  # the child's own CPU: less sensitive to load than wall
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} exited {proc.returncode}: {err[-2000:]}")
    # peak_mb comes from the child itself (see own_peak_mb): rusage would include the driver
    host_cpu = sessions_cpu() - host_before
    return {
        **json.loads(out.strip().splitlines()[-1]),
        "wall": wall,
        "cpu": cpu,
        "host_cpu": host_cpu,
    }


WORKS: tuple[str, ...] = ("fanout", "small", "big", "checks")


class Relay:
    """``bench/delay_relay.py`` in its own process: sshd reached through a delay line."""

    def __init__(self, host: str, port: int, rtt_ms: float) -> None:
        script = str(Path(__file__).with_name("delay_relay.py"))
        self.proc = subprocess.Popen(
            [sys.executable, script, host, str(port), str(rtt_ms)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def measure(
    work_dir: Path,
    reps: int,
    small: int,
    big: int,
    works: tuple[str, ...] = WORKS,
    rtts: tuple[float, ...] = (0,),
) -> dict[str, Any]:
    from tests.engine.helpers import make_repo
    from tests.fixtures.sshd import SSHServer

    repo = make_repo(work_dir)
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with SSHServer(work_dir / "sshd").start() as sshd:
        global SSHD_PID
        SSHD_PID = int((sshd.root / "sshd.pid").read_text())
        for rtt in rtts:
            relay = Relay(sshd.host, sshd.port, rtt) if rtt else None
            try:
                port = relay.port if relay else sshd.port
                known = work_dir / f"known_hosts-{port}"
                known.write_text(f"[{sshd.host}]:{port} {sshd.host_key_pub}\n")
                info = {
                    "host": sshd.host,
                    "port": port,
                    "user": sshd.user,
                    "known_hosts": str(known),
                    "client_key": str(sshd.client_key),
                }
                suffix = f" @ {rtt:g} ms RTT" if rtt else ""
                base = work_dir / (f"rtt-{rtt:g}" if rtt else "rtt-0")
                base.mkdir()
                got = measure_at(base, repo, info, reps, small, big, works)
                for work, tools in got.items():
                    samples[work + suffix] = tools
            finally:
                if relay:
                    relay.close()
    return {"reps": reps, "samples": samples, "rtts": list(rtts)}


def measure_at(
    work_dir: Path,
    repo: Path,
    info: dict[str, Any],
    reps: int,
    small: int,
    big: int,
    works: tuple[str, ...],
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every selected work, ``reps`` times, against the sshd (or relay) ``info`` names."""
    from types import SimpleNamespace

    from tests.engine.helpers import ssh_config

    samples: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def record(work: str, tool: str, got: dict[str, Any]) -> None:
        samples.setdefault(work, {}).setdefault(tool, []).append(got)

    sshd = SimpleNamespace(**info)
    sshd_file = work_dir / "sshd.json"
    sshd_file.write_text(json.dumps(info))

    def config_for(base: Path, n: int) -> str:
        cfg = ssh_config(sshd, base, repo, hosts=n)
        cfg["rollout"] = {"batches": ["1", "100%"], "drain_seconds": 0, "concurrency": n}
        cfg["ssh"]["max_connections"] = min(n, 100)
        path = base / "config.json"
        base.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cfg))
        return str(path)

    counter = iter(range(10**6))

    def run(tool: str, work: str, n: int, base: Path, **kw: Any) -> dict[str, Any]:
        argv = [tool, work, str(n), "--dir", str(base), "--sshd", str(sshd_file)]
        argv += ["--repo", str(repo), "--tag", kw.get("tag", "v2")]
        argv += ["--release", kw.get("release", f"r{next(counter):06d}")]
        argv += ["--previous", kw.get("previous", "")]
        if tool in ("portal-ops", BEFORE) and work != "fanout":
            argv += ["--config", config_for(base, n)]
        if kw.get("checks"):
            argv.append("--checks")
        return child(argv)

    def slug(tool: str) -> str:  # a shell word: the test recipe's paths are unquoted
        return tool.replace(" (before)", "-before")

    # the big fleet: a first deployment, once, untimed
    big_base = {t: work_dir / f"{slug(t)}-big" for t in TOOLS}
    live: dict[str, str] = {}
    if "big" in works or "checks" in works:
        for tool in TOOLS:
            live[tool] = run(tool, "first", big, big_base[tool], tag="v1").get("release") or ""
    for rep in range(reps):
        order = TOOLS[rep % len(TOOLS) :] + TOOLS[: rep % len(TOOLS)]
        if "fanout" in works:
            for tool in order:
                record(f"fanout {big}", tool, run(tool, "fanout", big, work_dir))
        if "small" in works or "checks" in works:
            for tool in order:  # small fleet: first deploy, upgrade, rollback
                base = work_dir / f"{slug(tool)}-small-{rep}"
                first = run(tool, "first", small, base, tag="v1", release=f"a{rep}")
                record(f"first deploy {small}", tool, first)
                record(
                    f"upgrade {small}", tool, run(tool, "upgrade", small, base, release=f"b{rep}")
                )
                record(
                    f"rollback {small}",
                    tool,
                    run(tool, "rollback", small, base, previous=f"a{rep}"),
                )
        if "big" in works:
            for tool in order:  # big fleet: upgrade, rollback
                previous = live[tool]
                release = f"c{rep}"
                up = run(tool, "upgrade", big, big_base[tool], release=release)
                record(f"upgrade {big}", tool, up)
                record(
                    f"rollback {big}",
                    tool,
                    run(tool, "rollback", big, big_base[tool], previous=previous or "x"),
                )
        if "checks" in works:
            for tool in [t for t in order if t.startswith("portal-ops")]:
                got = run(tool, "upgrade", big, big_base[tool], checks=True)
                record(f"upgrade {big} with checks", tool, got)
                got = run(tool, "rollback", big, big_base[tool])
                record(f"rollback {big} after checks", tool, got)
                base = work_dir / f"{slug(tool)}-small-{rep}"
                record(
                    f"upgrade {small} with checks",
                    tool,
                    run(tool, "upgrade", small, base, checks=True),
                )
    return samples


def medians(samples: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for work, tools in samples.items():
        for tool, runs in tools.items():
            out.setdefault(work, {})[tool] = {
                key: statistics.median(r[key] for r in runs)
                for key in (
                    "seconds",
                    "wall",
                    "cpu",
                    "imports_cpu",
                    "host_cpu",
                    "peak_mb",
                    "imports_mb",
                )
                if all(key in r for r in runs)
            }
    return out


def render(result: dict[str, Any]) -> str:
    med = medians(result["samples"])
    before = any(BEFORE in tools for tools in med.values())
    head = "| work | portal-ops |" + (" portal-ops before |" if before else "")
    lines = [
        f"Medians of {result['reps']} interleaved repetitions; in-process seconds (connect"
        " included), whole-process wall seconds, peak RSS MB.\n",
        head + " bare asyncssh | Fabric 3 | portal-ops / Fabric | portal-ops / asyncssh |",
        "|---" * (7 if before else 6) + "|",
    ]

    def cell(work: str, tool: str, key: str) -> str:
        value = med.get(work, {}).get(tool, {}).get(key)
        return "" if value is None else (f"{value:.0f}" if key.endswith("_mb") else f"{value:.2f}")

    def ratio(work: str, peer_work: str, peer: str, key: str) -> str:
        a = med.get(work, {}).get("portal-ops", {}).get(key)
        b = med.get(peer_work, {}).get(peer, {}).get(key)
        return f"{a / b:.2f}" if a and b else ""

    def row(work: str, peer_work: str, key: str, label: str) -> str:
        mine = f"| {work} ({label}) | {cell(work, 'portal-ops', key)} |"
        if before:
            mine += f" {cell(work, BEFORE, key)} |"
        return (
            mine + f" {cell(peer_work, 'asyncssh', key)} | {cell(peer_work, 'fabric', key)} |"
            f" {ratio(work, peer_work, 'fabric', key)} | {ratio(work, peer_work, 'asyncssh', key)} |"
        )

    latency = any(result.get("rtts") or [0])  # round trips: show the in-process time too
    for work in med:
        peer_work = work.replace(" with checks", "").replace(" after checks", "")
        for key, label in (
            ("seconds", "in-process s"),
            ("wall", "whole process s"),
            ("cpu", "CPU s, user+sys"),
            ("imports_cpu", "CPU s of it, start-up"),
            ("host_cpu", "hosts' CPU s"),
        ):
            if key == "seconds" and not work.startswith("fanout") and not latency:
                continue  # a deployment's in-process time is its whole time less start-up
            lines.append(row(work, peer_work, key, label))
        if work.startswith(("upgrade", "fanout")):
            lines.append(row(work, peer_work, "peak_mb", "peak MB"))
            lines.append(row(work, peer_work, "imports_mb", "MB after imports"))
    return "\n".join(lines)


def compile_sources(root: Path) -> None:
    """Bytecode for a measured checkout, as an install has it (the peers' libraries have
    theirs in site-packages): with PYTHONDONTWRITEBYTECODE set, or in a fresh checkout,
    every portal-ops child would otherwise compile the ~100 modules it imports, about
    0.4 s of CPU and a few MB of compiler memory that no installed portal-ops pays."""
    import compileall

    for package in ("backend", "tui"):
        compileall.compile_dir(root / package, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--big", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", nargs=3, metavar=("TOOL", "WORK", "N"))
    for name in ("dir", "sshd", "repo", "tag", "release", "previous", "config"):
        parser.add_argument(f"--{name}", default="")
    parser.add_argument("--checks", action="store_true")
    parser.add_argument("--base", default="", help="another checkout, measured beside")
    parser.add_argument(
        "--works",
        default=",".join(WORKS),
        help="which works, comma-separated: fanout, small (first deploy, upgrade and"
        " rollback on --small hosts), big (upgrade and rollback on --big hosts), checks",
    )
    parser.add_argument(
        "--rtt",
        default="0",
        help="round-trip delays in ms, comma-separated (e.g. 0,20,50): the sshd is reached"
        " through bench/delay_relay.py with that delay",
    )
    parser.add_argument(
        "--tools", default="", help="only these tools, comma-separated (default: all)"
    )
    args = parser.parse_args()
    global BASE, TOOLS
    if args.tools:
        TOOLS = tuple(t for t in args.tools.split(",") if t)
    if args.base:
        BASE = Path(args.base).resolve()
        TOOLS = (*TOOLS, BEFORE)
    works = tuple(w for w in args.works.split(",") if w)
    unknown = sorted(set(works) - set(WORKS))
    if unknown:
        parser.error(f"--works: unknown {', '.join(unknown)} (one of {', '.join(WORKS)})")
    rtts = tuple(float(r) for r in args.rtt.split(",") if r)
    if args.one:
        args.tool, args.work, n = args.one
        args.n = int(n)
        one(args)
        return
    for root in (ROOT, BASE):
        if root is not None:
            compile_sources(root)
    from bench.harness import run_and_report

    async def go(work: Path) -> dict[str, Any]:
        return await asyncio.to_thread(measure, work, args.reps, args.small, args.big, works, rtts)

    run_and_report(go, prefix="portal-ops-sbs-", as_json=args.json, render=render)


if __name__ == "__main__":
    main()
