"""``portal-ops monitor``: follow the portal's health live, judge it, report at the end.

In a terminal the table refreshes in place each window (per host and in total); in a
pipe it prints one line per window (and one per incident). Ctrl-C ends it cleanly and
writes the report. Exit codes: 0 no rollback rule fired, 1 one fired, 2 usage/config.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import time
from typing import Any

import click

from backend.events import Event, EventBus, Kind
from backend.transport import make_host

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    checked_id,
    config_option,
    json_option,
    load_or_exit,
    open_journal,
    print_json,
)

_COLOURS = {"pass": "green", "warn": "yellow", "fail": "red", "inconclusive": "bright_black"}


def parse_duration(value: str, option: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h30m``, ``500ms`` -> seconds; anything else (or zero)
    is a usage error naming the option (the one parser of :mod:`backend.durations`)."""
    from backend.durations import DurationError
    from backend.durations import parse_duration as parse

    try:
        seconds = parse(value, option)
    except DurationError:
        seconds = 0.0
    if seconds <= 0:
        raise click.BadParameter(
            f"{value!r}: give a positive duration such as 90s, 15m, 1h30m", param_hint=option
        )
    return seconds


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


class Printer:
    """Turns the monitor's events into a refreshing table (terminal) or lines (pipe)."""

    COLUMNS = ("host", "requests", "rps", "p50 ms", "p95 ms", "p99 ms", "errors", "uptime",
               "verdict")  # fmt: skip

    def __init__(self, title: str, duration: float, live: bool) -> None:
        self.title = title
        self.duration = duration
        self.live = live
        self.started = time.monotonic()
        self.rows: dict[str, dict[str, Any]] = {}
        self.incidents: list[str] = []
        self.drawn = 0

    def __call__(self, event: Event) -> None:
        if event.run != "monitor":
            return
        if event.kind == Kind.INCIDENT:
            line = f"{event.data.get('severity', '')}: {event.data.get('message', '')}"
            self.incidents.append(line)
            if not self.live:
                click.echo(f"{_clock(event.ts)} INCIDENT {line}")
            return
        if event.kind != Kind.METRIC_SAMPLE or event.data.get("aggregate"):
            return
        data = event.data
        self.rows[data["host"]] = data
        if data["host"] == "total":
            self.window_done(data)

    def window_done(self, total: dict[str, Any]) -> None:
        hosts = [r for h, r in self.rows.items() if h != "total" and r["window"] == total["window"]]
        if self.live:
            self.draw(total, hosts)
        else:
            click.echo(self.line(total, hosts))

    def line(self, total: dict[str, Any], hosts: list[dict[str, Any]]) -> str:
        head = (
            f"{_clock(total['end'])} {total['phase']} window {total['window']}"
            f" total n={total['requests']} rps={total['rps']:.1f} p50={_ms(total['p50'])}"
            f" p95={_ms(total['p95'])} p99={_ms(total['p99'])} err={_pct(total['error_rate'])}"
            f" uptime={_pct(total['uptime'])} verdict={total['verdict']}"
        )
        if total["bad_rules"]:
            head += f" [{','.join(total['bad_rules'])}]"
        parts = [head]
        parts += [
            f"{h['host']} n={h['requests']} p95={_ms(h['p95'])} err={_pct(h['error_rate'])}"
            f" {h['verdict']}"
            for h in hosts
        ]
        return " | ".join(parts)

    def draw(self, total: dict[str, Any], hosts: list[dict[str, Any]]) -> None:
        elapsed = time.monotonic() - self.started
        lines = [
            click.style(self.title, bold=True)
            + f"   {total['phase']} window {total['window']}"
            + f"   {_span(elapsed)} / {_span(self.duration)}   Ctrl-C to stop",
            "  ".join(f"{c:>9}" if i else f"{c:<14}" for i, c in enumerate(self.COLUMNS)),
        ]
        for row in [*sorted(hosts, key=lambda r: r["host"]), total]:
            cells = [
                f"{row['host']:<14}",
                f"{row['requests']:>9}",
                f"{row['rps']:>9.1f}",
                f"{_ms(row['p50']):>9}",
                f"{_ms(row['p95']):>9}",
                f"{_ms(row['p99']):>9}",
                f"{_pct(row['error_rate']):>9}",
                f"{_pct(row['uptime']):>9}",
                click.style(f"{row['verdict']:>9}", fg=_COLOURS.get(row["verdict"])),
            ]
            lines.append("  ".join(cells))
        bad = total["bad_rules"]
        lines.append(f"rules bad in this window: {', '.join(bad) if bad else 'none'}")
        width = max(40, shutil.get_terminal_size().columns - 3)  # a wrapped line breaks the redraw
        lines += [f"  {i[:width]}" for i in self.incidents[-4:]]
        out = f"\x1b[{self.drawn}F\x1b[J" if self.drawn else ""
        click.echo(out + "\n".join(lines))
        self.drawn = len(lines)


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def _span(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60:02d}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds / 3600:.1f}h"


async def _watch(
    config: Any,
    deployment_id: str | None,
    duration: float,
    baseline: float | None,
    auto_rollback: bool,
    report_path: str | None,
    live: bool,
) -> tuple[int, Any]:
    from backend.monitor.runner import Monitor
    from backend.monitor.store import SampleStore

    journal = open_journal(config)
    known = journal.get_deployment(deployment_id) if deployment_id else None
    if deployment_id is None:
        latest = journal.latest_deployment(config.portal.name)
        deployment_id = latest["id"] if latest else None
        known = latest
    bus = EventBus()
    bus.set_stamper(journal.record)
    hosts = (
        {h.name: make_host(config, h) for h in config.hosts}
        if config.monitor.access_log.enabled
        else {}
    )
    # an unknown explicit id stays that id: its rollback fails, it never hits another one
    on_trigger = None
    if auto_rollback:  # the engine loads only when a rule may start its rollback
        from backend.engine.adapters.monitor import rollback_callback

        on_trigger = rollback_callback(config, deployment_id, bus, journal)
    monitor = Monitor(
        config, hosts, bus, deployment_id, on_trigger, auto_rollback,
        store=SampleStore(journal.path),
    )  # fmt: skip
    title = f"portal-ops monitor {monitor.deployment_id}"
    if deployment_id and not known:
        click.echo(f"note: {deployment_id} is not in the journal; watching anyway", err=True)
    printer = Printer(title, duration, live)
    bus.subscribe(printer)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    loop.set_exception_handler(_quiet_cancelled)
    if not live:
        click.echo(
            f"watching {monitor.deployment_id}: traffic from {monitor.traffic or 'nothing'},"
            f" windows of {config.monitor.window_seconds:g}s for {_span(duration)},"
            f" auto-rollback {'on' if auto_rollback else 'off'}"
        )
    try:
        if baseline:
            recording = asyncio.create_task(monitor.record_baseline(baseline))
            halt = asyncio.create_task(stop.wait())
            await asyncio.wait({recording, halt}, return_when=asyncio.FIRST_COMPLETED)
            halt.cancel()
            if not recording.done():
                recording.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recording
        elif monitor.load_baseline():
            click.echo(f"baseline: the one recorded for {monitor.deployment_id}", err=True)
        report = await monitor.run(duration, until=stop) if not stop.is_set() else None
        if report is None:
            report = await monitor.stop("interrupted")
    finally:
        await asyncio.gather(*(h.close() for h in hosts.values()), return_exceptions=True)
    if report_path:
        report.write_file(report_path)
    click.echo(
        f"{'' if not live else chr(10)}verdict {report.verdict.upper()} after {report.windows}"
        f" window(s) ({report.stopped_by})"
    )
    if report.trigger:
        click.echo(f"trigger: {report.trigger['reason']}")
    if report.rollback:
        click.echo(f"rollback: {report.rollback}")
    for path in report.paths:
        click.echo(f"report: {path}")
    return (EXIT_FAILED if report.trigger else EXIT_OK), report


def _quiet_cancelled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Cancelled followers at Ctrl-C are expected; anything else is reported as usual."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


@click.command("monitor")
@click.argument("deploy_id", required=False, callback=checked_id)
@click.option("--duration", metavar="TIME", help="How long to watch: 90s, 15m, 1h."
              "  [default: [monitor] duration_seconds, 15m]")  # fmt: skip
@click.option(
    "--auto-rollback/--no-auto-rollback",
    default=False,
    help="Roll the deployment back when a rollback rule fires (once).  [default: off]",
)
@click.option(
    "--report", "report_path", metavar="FILE",
    help="Also write the report here (FILE.md: Markdown + JSON beside; else JSON + .md).",
)  # fmt: skip
@click.option(
    "--baseline", metavar="TIME",
    help="Record a baseline this long first (default: the deployment's recorded one).",
)  # fmt: skip
@click.option("--window", type=float, metavar="SECONDS", help="Window length override.")
@json_option
@config_option
def monitor(
    deploy_id: str | None,
    duration: str | None,
    auto_rollback: bool,
    report_path: str | None,
    baseline: str | None,
    window: float | None,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Follow the portal's health live: p50/p95/p99, errors and throughput per host and in
    total, judged by the [monitor] rules; a report at the end (or on Ctrl-C).

    DEPLOY_ID defaults to the latest deployment in the journal."""
    seconds = parse_duration(duration, "--duration") if duration else None
    base = parse_duration(baseline, "--baseline") if baseline else None
    if window is not None and window <= 0:
        raise click.BadParameter("must be positive", param_hint="--window")
    config = load_or_exit(config_path)
    if window is not None:
        config.monitor.window_seconds = window
    live = sys.stdout.isatty() and not as_json
    # under --json, stdout carries the report alone: the window lines go to stderr
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        code, report = asyncio.run(
            _watch(
                config,
                deploy_id,
                seconds or config.monitor.duration_seconds,
                base,
                auto_rollback,
                report_path,
                live,
            )
        )
    if as_json:
        print_json(report.to_dict())
    sys.exit(code)
