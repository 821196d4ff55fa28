"""Access-log lines parsed per second per host stream (target: >= 100,000/s).

Measures, on realistic nginx ``combined`` + ``$request_time`` lines:

1. the parser alone (the default fast path, an nginx ``log_format`` spec, a regex);
2. the follower's ``on_line`` (parse + count into the open window): the monitor's work
   per line;
3. a whole stream: ``cat`` of a log file through ``LocalHost.run(on_line=...)``, the same
   path ``tail -F`` lines take (pipe, asyncio readline, decode, callback);
4. with ``--ssh``: the same stream through a real sshd on loopback (tests/fixtures).

Run: ``.venv/bin/python bench/monitor_logparse.py [--lines 1000000] [--ssh]``
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.monitor.config import AccessLogConfig
from backend.monitor.sources.accesslog import AccessLogFollower, make_parser
from backend.monitor.window import Windows
from backend.transport import Host
from backend.transport.local import LocalHost

SPEC = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent'
    ' "$http_referer" "$http_user_agent" $request_time'
)
REGEX = r'^\S+ \S+ \S+ \[[^\]]*\] "[^"]*" (?P<status>\d{3}) \S+ "[^"]*" "[^"]*" (?P<request_time>[\d.]+)'
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "curl/8.5.0",
    "kube-probe/1.29",
]
PATHS = ["/", "/dashboard", "/api/v1/calls?page=2&per_page=50", "/login", "/assets/app.3f9a.js",
         "/admin/customers/1842/edit", "/api/v1/appointments/search?q=m%C3%BCller"]  # fmt: skip


def make_lines(n: int, seed: int = 7) -> list[str]:
    rnd = random.Random(seed)
    statuses = [200] * 90 + [201, 204, 301, 302, 304, 400, 401, 404, 500, 503]
    lines = []
    for i in range(n):
        ip = f"10.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
        method = "POST" if i % 9 == 0 else "GET"
        lines.append(
            f"{ip} - - [25/Nov/2026:07:{i // 60000 % 60:02d}:{i // 1000 % 60:02d} +0000]"
            f' "{method} {rnd.choice(PATHS)} HTTP/1.1" {rnd.choice(statuses)}'
            f' {rnd.randrange(200, 90000)} "https://portal.example/" "{rnd.choice(AGENTS)}"'
            f" {rnd.expovariate(1 / 0.08):.3f}"
        )
    return lines


def rate(label: str, n: int, seconds: float) -> float:
    per = n / seconds
    print(f"  {label:<52} {per:>12,.0f} lines/s")
    return per


def bench_parsers(lines: list[str]) -> dict[str, float]:
    results: dict[str, float] = {}
    for label, cfg in (
        ("parser: default (combined+request_time, str.find)", AccessLogConfig()),
        ("parser: nginx log_format spec (regex)", AccessLogConfig(format=SPEC)),
        ("parser: user regex", AccessLogConfig(regex=REGEX)),
    ):
        parse = make_parser(cfg)
        t = time.perf_counter()
        ok = sum(1 for line in lines if parse(line) is not None)
        results[label] = rate(label, len(lines), time.perf_counter() - t)
        assert ok == len(lines), f"{label}: {len(lines) - ok} lines not parsed"
    return results


def _noop(*_: object) -> None:
    return None


def bench_on_line(lines: list[str]) -> float:
    windows = Windows()
    follower = AccessLogFollower(
        LocalHost("web-1"), "-", make_parser(AccessLogConfig()), windows, _noop, _noop
    )
    on_line: Callable[[str, str], None] = follower.on_line
    t = time.perf_counter()
    for line in lines:
        on_line("stdout", line)
    per = rate("on_line: parse + count into the window", len(lines), time.perf_counter() - t)
    tally = windows.current[("access_log", "web-1")]
    assert tally.requests == len(lines)
    return per


async def bench_stream(host: Host, path: Path, n: int, label: str) -> float:
    windows = Windows()
    follower = AccessLogFollower(host, str(path), make_parser(AccessLogConfig()), windows,
                                 _noop, _noop)  # fmt: skip
    t = time.perf_counter()
    result = await host.run(f"cat {path}", on_line=follower.on_line, timeout=600)
    seconds = time.perf_counter() - t
    assert result.exit_status == 0, result.tail()
    assert follower.lines == n, (follower.lines, n)
    return rate(label, n, seconds)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--ssh", action="store_true", help="also through a real sshd")
    args = parser.parse_args()
    lines = make_lines(args.lines)
    print(f"{args.lines:,} nginx combined+request_time lines, avg {sum(map(len, lines)) // len(lines)}"
          " bytes; one Python process, one core")  # fmt: skip
    bench_parsers(lines)
    bench_on_line(lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "access.log"
        path.write_text("\n".join(lines) + "\n")
        await bench_stream(LocalHost("web-1"), path, len(lines),
                           "stream: LocalHost.run(cat) -> on_line")  # fmt: skip
        if args.ssh:
            from backend.transport.ssh import SSHHost, SSHOptions
            from tests.fixtures import SSHServer

            server = SSHServer().start()
            try:
                options = SSHOptions(known_hosts=str(server.known_hosts),
                                     identity_files=[str(server.client_key)], use_agent=False)  # fmt: skip
                host = SSHHost("web-1", server.host, server.port, server.user, options=options)
                await bench_stream(host, path, len(lines), "stream: SSHHost.run(cat) -> on_line")
                await host.close()
            finally:
                server.stop()


if __name__ == "__main__":
    asyncio.run(main())
