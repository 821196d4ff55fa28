"""``portal-ops feature ...``: the feature flags, from the command line.

The seed's ``php artisan feature`` commands, exactly, plus what an operator expects of a
flag system. Config is optional: without one, flags live in the default state dir and
nothing is published; with one, ``[state] dir`` and ``[redis] url``/``prefix`` are used.

Exit codes: 0 ok; 1 failed (a rollout stepped back, a change saved but not published to
Redis, Redis unreachable); 2 bad input or config (bad name or percentage, unknown flag).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from backend.config import Config, resolve_config_path
from backend.events import EventBus
from backend.flags.describe import strategy_lines
from backend.flags.model import Context, FlagError
from backend.flags.service import Change, FlagService, StatsUnavailable
from backend.flags.store import diff
from backend.flags.unleash import export_document, parse_strategy, read_document

from .common import (
    EXIT_FAILED,
    checked_text,
    config_option,
    fail,
    json_option,
    load_or_exit,
    open_journal,
    print_json,
)
from .completion import complete_flag_names


@click.group()
def feature() -> None:
    """Feature flags: percentage rollouts, overrides, the kill switch, audit, usage."""


# -- plumbing -------------------------------------------------------------------------------


def _config(config_path: str | None) -> Config | None:
    if config_path:
        return load_or_exit(config_path)
    if resolve_config_path(None).exists():  # ./portal-ops.toml, a parent's, ~/.config's
        return load_or_exit(None)
    return None


@contextmanager
def _service(config_path: str | None) -> Iterator[tuple[FlagService, Config | None]]:
    """The service, with changes journaled as events; bad input exits 2, changing nothing."""
    config = _config(config_path)
    journal = open_journal(config)
    bus = EventBus()
    bus.set_stamper(journal.record)
    service = FlagService(
        journal,
        config.redis.url if config else None,
        config.redis.prefix if config else "portal-ops",
        bus=bus,
    )
    try:
        yield service, config
    except FlagError as exc:
        fail(str(exc))
    finally:
        service.close()
        journal.close()


def _reason_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--reason", default="", callback=checked_text, help="Why: kept in the audit log."
    )(func)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    s = max(0, int(time.time() - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def _changes_text(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff(before, after).items())


def _done(change: Change, as_json: bool, text: str) -> None:
    """Print the outcome; a change saved but not published exits 1 and says so."""
    if as_json:
        print_json(change.to_json())
    else:
        click.echo(text if change.changed else f"{text} (unchanged)")
        if change.changed and change.flag != "*" and change.before and change.after:
            detail = _changes_text(change.before, change.after)
            if detail:
                click.echo(f"  {detail}")
    pub = change.publication
    if pub is not None and not pub.ok:
        click.echo(
            f"portal-ops: warning: saved in the store but NOT published: {pub.error}\n"
            "  Running apps keep the old values until `portal-ops feature publish` succeeds"
            " (any later change also re-publishes everything).",
            err=True,
        )
        sys.exit(EXIT_FAILED)


def _state(flag_enabled: bool, pct: int) -> str:
    return f"on at {pct}%" if flag_enabled else f"off (rollout {pct}% kept)"


def _emergency_banner(service: FlagService) -> None:
    em = service.emergency()
    if em.active:
        click.echo(
            f"EMERGENCY DISABLE ACTIVE since {_when(em.since)} by {em.by}: {em.reason}\n"
            "  every flag is off for everyone; `portal-ops feature restore` serves them again.",
            err=True,
        )


# -- reading --------------------------------------------------------------------------------


@feature.command("list")
@config_option
@json_option
def list_cmd(config_path: str | None, as_json: bool) -> None:
    """Every flag: state, percentage, overrides, evaluations in the last hour, last change."""
    with _service(config_path) as (service, _):
        rows = service.list_flags()
        if as_json:
            em = service.emergency()
            print_json({"emergency": em.to_json(), "flags": [r.to_json() for r in rows]})
            return
        _emergency_banner(service)
        if not rows:
            click.echo("no flags yet (create one: portal-ops feature create NAME)")
            return
        width = shutil.get_terminal_size((80, 24)).columns
        table = [("NAME", "STATE", "STRATEGIES", "OVR", "EVAL/1H", "LAST CHANGE")]
        for r in rows:
            evals = "n/a" if r.evaluations_last_hour is None else str(r.evaluations_last_hour)
            last = (
                f"{r.last_change_action} by {r.last_change_by} {_ago(r.last_change_at)}"
                if r.last_change_at
                else "-"
            )
            table.append((_clip(r.name, 26), r.state, r.summary, str(r.overrides), evals, last))
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        for row in table:
            cells = [row[i].ljust(widths[i]) for i in range(5)]
            click.echo(_clip("  ".join([*cells, row[5]]), width))


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


@feature.command()
@click.argument("name", shell_complete=complete_flag_names)
@config_option
@json_option
def show(name: str, config_path: str | None, as_json: bool) -> None:
    """One flag in full: state, strategies with their constraints and segments, overrides."""
    with _service(config_path) as (service, _):
        flag = service.get(name)
        if as_json:
            print_json(flag.to_json())
            return
        _emergency_banner(service)
        width = min(shutil.get_terminal_size((80, 24)).columns, 100)
        state = "on" if flag.enabled else "off"
        click.echo(_clip(f"{flag.name}: {state}  (version {flag.version})", width))
        if flag.description:
            click.echo(_clip(f"  {flag.description}", width))
        click.echo("strategies:")
        for line in strategy_lines(flag, width - 2):
            click.echo(f"  {line}")
        for kind, overrides in (("company", flag.company_overrides), ("user", flag.user_overrides)):
            if overrides:
                on = sorted(k for k, v in overrides.items() if v)
                off = sorted(k for k, v in overrides.items() if not v)
                text = f"{kind} overrides: on {', '.join(on) or '-'}; off {', '.join(off) or '-'}"
                click.echo(_clip(text, width))


@feature.command("set-strategies")
@click.argument("name", shell_complete=complete_flag_names)
@click.argument("file", type=click.File("r", encoding="utf-8"))
@_reason_option
@config_option
@json_option
def set_strategies(
    name: str, file: Any, reason: str, config_path: str | None, as_json: bool
) -> None:
    """Replace a flag's strategies with FILE ('-': stdin): a JSON list in Unleash's shape,
    e.g. [{"name": "flexibleRollout", "parameters": {"rollout": "50", "stickiness":
    "userId"}, "constraints": [{"contextName": "country", "operator": "IN", "values":
    ["fr"]}]}]. Segments may be given inline as {"id", "name", "constraints"} objects."""
    try:
        raw = json.load(file)
    except ValueError as exc:
        fail(f"{getattr(file, 'name', 'FILE')}: not JSON: {exc}")
    if not isinstance(raw, list):
        fail("the strategies file must hold a JSON list of strategies")
    with _service(config_path) as (service, _):
        strategies = [parse_strategy(item, f"strategy {i + 1}") for i, item in enumerate(raw)]
        change = service.set_strategies(name, strategies, reason=reason)
        _done(change, as_json, f"{name}: strategies set ({len(strategies)})")


@feature.command()
@click.argument("name", shell_complete=complete_flag_names)
@click.option("--company", help="Company (tenant) id.")
@click.option("--user", help="User id.")
@click.option("--session", help="Session id.")
@click.option(
    "--property",
    "properties",
    multiple=True,
    metavar="KEY=VALUE",
    help="A context property (constraints, custom stickiness); repeatable.",
)
@click.option("--environment", help="Unleash context field environment.")
@click.option("--app-name", help="Unleash context field appName.")
@click.option("--remote-address", help="Unleash context field remoteAddress.")
@click.option("--current-time", help="currentTime for date constraints (RFC 3339; default now).")
@config_option
@json_option
def check(
    name: str,
    company: str | None,
    user: str | None,
    session: str | None,
    properties: tuple[str, ...],
    environment: str | None,
    app_name: str | None,
    remote_address: str | None,
    current_time: str | None,
    config_path: str | None,
    as_json: bool,
) -> None:
    """What a company or user gets right now, and why: the rule, and which strategy and
    constraint decided."""
    props: dict[str, str] = {}
    for item in properties:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"bad --property {item!r}: use KEY=VALUE")
        props[key] = value
    ctx = Context(
        company,
        user,
        session,
        props,
        environment=environment,
        app_name=app_name,
        remote_address=remote_address,
        current_time=current_time,
    )
    with _service(config_path) as (service, _):
        result = service.check(name, ctx)
        if as_json:
            print_json(result.to_json())
            return
        who = " ".join(
            f"{k}={v}" for k, v in result.context.to_dict().items() if v and k != "properties"
        )
        who += "".join(f" {k}={v}" for k, v in props.items())
        res = result.resolution
        click.echo(f"{name} for {who or '(empty context)'}: {'ON' if res.value else 'OFF'}")
        click.echo(f"  reason: {res.reason}   rule: {res.rule}")
        width = max(shutil.get_terminal_size((80, 24)).columns, 40)
        for line in result.explanation.splitlines():
            indent = " " * (len(line) - len(line.lstrip()) + 2)
            click.echo(textwrap.fill(line.strip(), width, initial_indent=indent,
                                     subsequent_indent=indent + "  "))  # fmt: skip


@feature.command()
@click.argument("name", required=False, shell_complete=complete_flag_names)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100000))
@config_option
@json_option
def history(name: str | None, limit: int, config_path: str | None, as_json: bool) -> None:
    """The audit log: who, when, what changed from and to, and why (newest first)."""
    with _service(config_path) as (service, _):
        entries = service.history(name, limit)
        if as_json:
            print_json([e.to_json() for e in entries])
            return
        if not entries:
            click.echo("no flag changes recorded yet")
            return
        for e in entries:
            target = "every flag" if e.flag == "*" else e.flag
            click.echo(f"{_when(e.ts)}  #{e.seq}  {e.action} {target}  by {e.operator}")
            if e.flag == "*":
                after = e.after or {}
                if after.get("active"):
                    click.echo("    kill switch ON: every flag off for everyone")
            else:
                changes = _changes_text(e.before, e.after)
                if changes:
                    click.echo(f"    {changes}")
            if e.reason:
                click.echo(f"    reason: {e.reason}")
            if e.deployment_id:
                click.echo(f"    deployment: {e.deployment_id}")


_BARS = "·▁▂▃▄▅▆▇█"  # "·": no evaluations in that column


@feature.command()
@click.argument("name", shell_complete=complete_flag_names)
@click.option("--since", default="1h", show_default=True, help="Window: 30m, 1h, 24h (max 48h).")
@click.option(
    "--top",
    default=10,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="How many companies to list.",
)
@config_option
@json_option
def stats(name: str, since: str, top: int, config_path: str | None, as_json: bool) -> None:
    """Evaluations, true/false, top companies and a per-minute series (counted by the apps)."""
    from backend.flags.rollout import parse_duration

    with _service(config_path) as (service, _):
        seconds = parse_duration(since, "--since")
        if not 60 <= seconds <= 48 * 3600:
            fail(f"bad --since {since!r}: from 1m to 48h")
        try:
            st = service.stats(name, seconds, top)
        except StatsUnavailable as exc:
            fail(str(exc), 2 if not exc.configured else EXIT_FAILED)
        if as_json:
            print_json(st.to_json())
            return
        share = f" ({100 * st.yes / st.total:.1f}% true)" if st.total else ""
        click.echo(f"{name}: {st.total} evaluations in the last {since}{share}")
        click.echo(f"  true: {st.yes}   false: {st.no}   last evaluated: {_ago(st.last_evaluated)}")
        click.echo(f"  per minute since {_when(st.since)}: {_spark(st.series)}")
        if st.companies:
            click.echo("  top companies (per-company counts are kept per hour):")
            width = max(len(c) for c, _, _ in st.companies)
            for company, yes, no in st.companies:
                click.echo(
                    f"    {company.ljust(width)}  {yes + no:>8}  true {yes:>8}  false {no:>8}"
                )


def _spark(series: list[tuple[int, int, int]], width: int = 60) -> str:
    totals = [y + n for _, y, n in series]
    if len(totals) > width:  # fold minutes into ``width`` columns
        size = -(-len(totals) // width)
        totals = [sum(totals[i : i + size]) for i in range(0, len(totals), size)]
    peak = max(totals, default=0)
    if peak == 0:
        return "(no evaluations)"
    return "".join(_BARS[min(8, -(-t * 8 // peak))] for t in totals) + f"  peak {peak}"


# -- changing -------------------------------------------------------------------------------


@feature.command()
@click.argument("name", shell_complete=complete_flag_names)
@click.option("--description", default="", callback=checked_text, help="What the flag gates.")
@click.option(
    "--stickiness",
    default=None,
    help="Context field to bucket on: company (default), user, session, a property, or"
    " Unleash's default (userId, then sessionId, then random) or random.",
)
@click.option(
    "--group", default="", help="Bucketing group, Unleash's groupId (default: the flag name)."
)
@_reason_option
@config_option
@json_option
def create(
    name: str,
    description: str,
    stickiness: str | None,
    group: str,
    reason: str,
    config_path: str | None,
    as_json: bool,
) -> None:
    """Create a flag, off (it serves 100% once enabled, unless --percentage says otherwise)."""
    with _service(config_path) as (service, config):
        stick = stickiness or (config.flags.stickiness if config else "company")
        change = service.create(name, description, stickiness=stick, group=group, reason=reason)
        _done(change, as_json, f"created {name}: off (bucketing on {stick})")


@feature.command()
@click.argument("name", shell_complete=complete_flag_names)
@click.option("--yes", is_flag=True, help="Do not ask.")
@_reason_option
@config_option
@json_option
def delete(name: str, yes: bool, reason: str, config_path: str | None, as_json: bool) -> None:
    """Delete a flag and its overrides (asks; --yes). Its audit history is kept."""
    with _service(config_path) as (service, _):
        flag = service.get(name)
        if not yes:
            click.echo(
                f"{name}: {_state(flag.enabled, flag.percentage)}, {flag.overrides_count}"
                " override(s). Apps asking for it will get their default."
            )
            if not click.confirm(f"Delete {name}?", default=False):
                fail("not deleted", EXIT_FAILED)
        change = service.delete(name, reason=reason)
        _done(change, as_json, f"deleted {name}")


@feature.command()
@click.argument("name", shell_complete=complete_flag_names)
@click.option(
    "--percentage",
    default=None,
    metavar="0..100",
    help="Share of companies served (default: keep the flag's current percentage).",
)
@_reason_option
@config_option
@json_option
def enable(
    name: str, percentage: str | None, reason: str, config_path: str | None, as_json: bool
) -> None:
    """Serve the flag, to --percentage of companies (bucketed; raising it keeps everyone in)."""
    with _service(config_path) as (service, _):
        change = service.enable(name, percentage, reason=reason)
        after = change.after or {}
        _done(change, as_json, f"{name}: {_state(True, int(after.get('percentage', 0)))}")
        if not as_json:
            _emergency_banner(service)


@feature.command()
@click.argument("name", shell_complete=complete_flag_names)
@_reason_option
@config_option
@json_option
def disable(name: str, reason: str, config_path: str | None, as_json: bool) -> None:
    """Stop serving one flag; its percentage and overrides are kept."""
    with _service(config_path) as (service, _):
        change = service.disable(name, reason=reason)
        after = change.after or {}
        _done(change, as_json, f"{name}: {_state(False, int(after.get('percentage', 0)))}")


@feature.command()
@click.argument("name", shell_complete=complete_flag_names)
@click.option("--company", help="Company (tenant) id.")
@click.option("--user", help="User id.")
@click.option("--on", "on", is_flag=True, help="Always serve the flag to it.")
@click.option("--off", "off", is_flag=True, help="Never serve the flag to it.")
@click.option("--clear", is_flag=True, help="Remove the override.")
@_reason_option
@config_option
@json_option
def override(
    name: str,
    company: str | None,
    user: str | None,
    on: bool,
    off: bool,
    clear: bool,
    reason: str,
    config_path: str | None,
    as_json: bool,
) -> None:
    """Force the flag on or off for one company or user (beats the percentage, not the
    flag being off or the emergency disable)."""
    if (company is None) == (user is None):
        fail("give exactly one of --company ID or --user ID")
    if sum((on, off, clear)) != 1:
        fail("give exactly one of --on, --off or --clear")
    kind, ident = ("company", company) if company is not None else ("user", user)
    value = None if clear else on
    with _service(config_path) as (service, _):
        assert ident is not None
        change = service.override(name, kind, ident, value, reason=reason)
        what = "cleared" if clear else "ON" if on else "OFF"
        _done(change, as_json, f"{name}: override for {kind} {ident.strip()} {what}")


@feature.command("import")
@click.option(
    "--unleash",
    "path",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Unleash export (admin UI Export) or client features document; '-' for stdin.",
)
@click.option("--environment", help="Which environment of the export to take.")
@click.option(
    "--segments",
    "segments_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Segments with their constraints (GET /api/admin/segments): an export names them only.",
)
@click.option("--replace", is_flag=True, help="Overwrite flags that exist (their overrides go).")
@_reason_option
@config_option
@json_option
def import_cmd(
    path: str,
    environment: str | None,
    segments_path: str | None,
    replace: bool,
    reason: str,
    config_path: str | None,
    as_json: bool,
) -> None:
    """Take flags from Unleash, each serving exactly what Unleash served. Everything is
    checked first: a flag portal-ops cannot serve identically (custom strategy,
    dependency, unknown operator) is refused with its name, and nothing is written."""
    doc = _read_json(path)
    segments_doc = _read_json(segments_path) if segments_path else None
    with _service(config_path) as (service, _):
        imported = read_document(doc, environment, segments_doc)
        changes = service.import_flags(
            imported.flags, replace_existing=replace, reason=reason or f"import from {path}"
        )
        for warning in imported.warnings:
            click.echo(f"portal-ops: warning: {warning}", err=True)
        unpublished = [c for c in changes if c.publication is not None and not c.publication.ok]
        if as_json:
            print_json(
                {
                    "environment": imported.environment,
                    "imported": [c.to_json() for c in changes],
                    "warnings": imported.warnings,
                }
            )
        else:
            click.echo(
                f"imported {len(changes)} flag(s) from {path} (environment {imported.environment})"
            )
            for c in changes:
                click.echo(f"  {c.flag}{'' if c.changed else ' (unchanged)'}")
        if unpublished:
            click.echo(
                f"portal-ops: warning: {len(unpublished)} flag(s) saved but NOT published:"
                f" {unpublished[0].publication.error if unpublished[0].publication else ''}",
                err=True,
            )
            sys.exit(EXIT_FAILED)


@feature.command("export")
@click.option("--unleash", is_flag=True, required=True, help="Unleash's export format.")
@click.option("--environment", default="default", show_default=True)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    help="File to write ('-': stdout).",
)
@config_option
def export_cmd(unleash: bool, environment: str, output: str, config_path: str | None) -> None:
    """Write every flag in Unleash's export format (import it in Unleash's admin UI).
    Overrides become constraints, segments are written inline: answers are kept."""
    with _service(config_path) as (service, _):
        if service.emergency().active:
            click.echo(
                "portal-ops: warning: the kill switch is active here; it is not exported"
                " (Unleash will serve the flags' own configuration)",
                err=True,
            )
        doc = export_document(service.flags(), environment)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if output == "-":
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"exported {len(doc['features'])} flag(s) to {output}", err=True)


def _read_json(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        return json.loads(text)
    except OSError as exc:
        fail(f"{path}: {exc.strerror or exc}")
    except ValueError as exc:
        fail(f"{path}: not JSON: {exc}")


@feature.command("emergency-disable")
@click.option(
    "--reason",
    required=True,
    callback=checked_text,
    help="Why (required; kept in the audit log).",
)
@config_option
@json_option
def emergency_disable(reason: str, config_path: str | None, as_json: bool) -> None:
    """Every flag off at once for every company, overrides included; configuration kept."""
    with _service(config_path) as (service, _):
        change = service.emergency_disable(reason)
        count = len(service.flags())
        text = (
            f"EMERGENCY DISABLE active: all {count} flag(s) off for everyone. Configuration is"
            " kept; `portal-ops feature restore` serves it again."
        )
        if change.published:
            text += "\n  published to Redis: running apps have it now."
        _done(change, as_json, text)


@feature.command()
@click.option("--yes", is_flag=True, help="Do not ask.")
@_reason_option
@config_option
@json_option
def restore(yes: bool, reason: str, config_path: str | None, as_json: bool) -> None:
    """Lift the emergency disable (asks; shows what it will serve again)."""
    with _service(config_path) as (service, _):
        em = service.emergency()
        if not em.active:
            if as_json:
                print_json({"changed": False, "message": "emergency disable is not active"})
            else:
                click.echo("emergency disable is not active; nothing to restore")
            return
        live = service.restore_preview()
        if not yes:
            click.echo(f"emergency disable since {_when(em.since)} by {em.by}: {em.reason}")
            if live:
                click.echo("restore will serve again:")
                for f in live:
                    extra = f", {f.overrides_count} override(s)" if f.overrides_count else ""
                    click.echo(f"  {f.name}: {f.percentage}%{extra}")
            else:
                click.echo("no flag is enabled: restore serves nothing new.")
            if not click.confirm("Restore?", default=False):
                fail("not restored", EXIT_FAILED)
        change = service.restore(reason=reason)
        _done(change, as_json, f"restored: {len(live)} enabled flag(s) served again")


@feature.command()
@click.option(
    "--check",
    "only_check",
    is_flag=True,
    help="Only compare Redis with the store; exit 1 if they differ.",
)
@config_option
@json_option
def publish(only_check: bool, config_path: str | None, as_json: bool) -> None:
    """Send every flag to Redis again (after Redis was down or restarted empty)."""
    import redis as redis_lib

    with _service(config_path) as (service, _):
        if not service.redis_url:
            fail("no Redis configured ([redis] url): nothing to publish to")
        if only_check:
            try:
                result = service.verify()
            except redis_lib.RedisError as exc:
                fail(f"Redis unreachable: {type(exc).__name__}: {exc}", EXIT_FAILED)
            assert result is not None
            if as_json:
                print_json(result.__dict__)
            else:
                click.echo(result.message)
                for name in result.mismatches:
                    click.echo(f"  differs: {name}")
            if not result.ok:
                sys.exit(EXIT_FAILED)
            return
        pub = service.publish()
        assert pub is not None
        if as_json:
            print_json(pub.to_json())
        elif pub.ok:
            click.echo(f"published {len(service.flags())} flag(s) (version {pub.version})")
        if not pub.ok:
            fail(pub.error, EXIT_FAILED)


@feature.command()
@click.argument("name", shell_complete=complete_flag_names)
@click.option(
    "--steps", default=None, help="Percentages, e.g. 10,50,100 (default: [flags] rollout_steps)."
)
@click.option(
    "--hold",
    default=None,
    help="How long each step is held: 30s, 5m, 1h (default: [flags] rollout_hold).",
)
@click.option(
    "--health-url",
    "health_urls",
    multiple=True,
    metavar="URL",
    help="Health gate: must answer 2xx/3xx (repeatable; default: the hosts' health URLs).",
)
@click.option("--no-gate", is_flag=True, help="Hold the steps without any health gate.")
@click.option(
    "--interval",
    default=None,
    help="Health check interval while holding (default: hold/5, at most 10s).",
)
@_reason_option
@config_option
@json_option
def rollout(
    name: str,
    steps: str | None,
    hold: str | None,
    health_urls: tuple[str, ...],
    no_gate: bool,
    interval: str | None,
    reason: str,
    config_path: str | None,
    as_json: bool,
) -> None:
    """Gradual rollout: each step held and gated on health; a failed gate steps back."""
    from backend.flags.gate import http_gate
    from backend.flags.rollout import GradualRollout, StepUpdate, parse_duration

    with _service(config_path) as (service, config):
        cfg = config.flags if config else None
        step_list: str | list[int] = steps or (cfg.rollout_steps if cfg else [10, 50, 100])
        hold_s = (
            parse_duration(hold, "--hold")
            if hold is not None
            else (cfg.rollout_hold if cfg else 300.0)
        )
        every = (
            parse_duration(interval, "--interval")
            if interval
            else (cfg.rollout_check_interval if cfg else None)
        )
        urls = list(health_urls) or _config_health_urls(config)
        if no_gate and health_urls:
            fail("--no-gate and --health-url contradict each other")
        if not urls and not no_gate:
            fail(
                "no health gate: give --health-url URL, a config whose hosts have a health URL,"
                " or --no-gate"
            )
        gate = None if no_gate else http_gate(urls, timeout=cfg.gate_timeout if cfg else 10.0)

        def show(update: StepUpdate) -> None:
            if as_json:
                return
            held = f" [{update.held:.0f}/{update.hold:.0f}s]" if update.status == "check" else ""
            click.echo(
                f"{_when(time.time())}  {update.flag} {update.percentage:>3}%"
                f"  {update.status}{held}: {update.detail}"
            )

        runner = GradualRollout(
            service,
            name,
            step_list,
            hold_s,
            gate,
            show,
            check_interval=every,
            reason=reason or "feature rollout",
        )
        service.get(name)  # unknown flag: exit 2 before anything happens
        result = asyncio.run(runner.run())
        if as_json:
            print_json(result.to_json())
        if not result.ok:
            sys.exit(EXIT_FAILED)


def _config_health_urls(config: Config | None) -> list[str]:
    if config is None:
        return []
    from backend.engine.traffic import health_url

    return [u for h in config.hosts if (u := health_url(config, h))]
