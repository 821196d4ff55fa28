"""Services the portal depends on: database (P09), Redis (P10), backups (P11), web and
app servers (P12); after the switch, database and cache from the app (Q10), queue workers
(Q11), the scheduler (Q12) and the app server pool (Q13)."""

from __future__ import annotations

import json
import posixpath
import time
from typing import Any, Literal

from ..shell import q
from .access import safe_url
from .config import CommandProbe
from .context import LOCAL, Context
from .model import (
    Outcome,
    Status,
    answered,
    check,
    errored,
    failed,
    passed,
    skipped,
    warned,
    worst,
)
from .parsers import parse_df
from .resources import existing_ancestor

Where = Literal["primary", "all", "local"]


async def probes_per_host(
    ctx: Context, probes: list[tuple[str, CommandProbe, Where]]
) -> list[Outcome]:
    """Several configured commands, one row per host: the worst of its commands."""
    plan: dict[str, list[tuple[str, CommandProbe]]] = {}
    for label, probe, default_on in probes:
        for name in ctx.select(probe.on or default_on, probe.roles):
            plan.setdefault(name, []).append((label, probe))
    if not plan:
        return [errored("no host matches the configured roles")]

    async def one(name: str) -> Outcome:
        outcomes = []
        for label, probe in plan[name]:
            result = await ctx.sh(name, ctx.probe_command(name, probe))
            outcome = ctx.judge(result, probe, "")
            outcome.message = f"{label}: {outcome.message}" if label else outcome.message
            outcomes.append(outcome)
        status = worst(o.status for o in outcomes)
        shown = (
            [o for o in outcomes if o.status is status] if status is not Status.PASS else outcomes
        )
        threshold = "every command exits 0" if len(outcomes) > 1 else "exit 0"
        return Outcome(
            status,
            "; ".join(o.message for o in shown),
            value=f"{sum(o.status is Status.PASS for o in outcomes)}/{len(outcomes)}",
            unit="ok",
            threshold=threshold,
        )

    order = [LOCAL, *ctx.host_names]
    return await ctx.each_host(one, [n for n in order if n in plan])


@check(
    "P09", "Database reachable with the configured credentials", "services", weight=9, critical=True
)
async def database(ctx: Context) -> list[Outcome]:
    probe = ctx.vc.database
    if probe is None:
        return [
            skipped(
                "no database command configured (e.g. php artisan db:monitor,"
                " python manage.py check --database default)"
            )
        ]
    return await ctx.run_probe(probe, "primary")


@check("P10", "Redis reachable", "services", weight=8, critical=True)
async def redis_reachable(ctx: Context) -> list[Outcome]:
    url = ctx.vc.redis_url or ctx.config.redis.url
    probe = ctx.vc.redis_command
    if not url and probe is None:
        return [
            skipped(
                "no Redis configured ([redis] url, validation.redis_url or"
                " validation.redis_command)"
            )
        ]
    rows: list[Outcome] = []
    if url:
        rows.append(await redis_ping(ctx, url))
    if probe is not None:
        rows += await ctx.run_probe(probe, "all")
    return rows


async def redis_ping(ctx: Context, url: str) -> Outcome:
    """PING from the portal-ops machine: PONG passes, anything else fails."""
    import redis.asyncio as aredis

    shown = safe_url(ctx, url)
    threshold = "PONG"
    started = time.perf_counter()
    client = aredis.Redis.from_url(
        url,
        socket_timeout=ctx.vc.http_timeout,
        socket_connect_timeout=ctx.vc.http_timeout,
        retry_on_timeout=False,
    )
    try:
        pong = await client.ping()
        ms = round((time.perf_counter() - started) * 1000, 1)
        if pong:
            return passed(
                f"PONG from {shown} in {ms:g} ms",
                host=LOCAL,
                value=ms,
                unit="ms",
                threshold=threshold,
                duration_ms=ms,
            )
        return failed(f"no PONG from {shown}", host=LOCAL, threshold=threshold)
    except Exception as exc:
        return failed(
            f"no PONG from {shown}: {ctx.redact(str(exc)) or type(exc).__name__}",
            host=LOCAL,
            value="down",
            threshold=threshold,
            duration_ms=(time.perf_counter() - started) * 1000,
        )
    finally:
        await client.aclose()


@check(
    "P11",
    "Backup directory writable with room for the dump",
    "services",
    weight=8,
    critical=True,
    scope="host",
)
async def backup_dir(ctx: Context) -> list[Outcome]:
    vc = ctx.vc

    async def one(name: str) -> Outcome:
        directory = vc.backup_dir
        if not directory.startswith("/"):
            directory = posixpath.join(ctx.deploy_path(name), directory)
        directory = posixpath.normpath(directory)
        # the newest backup is the last folder by name (deployment ids sort by time): the
        # shell's own glob, where ls -t | grep | head started three processes; df and du
        # are read here, not through tail and awk
        script = (
            existing_ancestor(directory)
            + f'n=; if [ "$p" = {q(directory)} ]; then echo EXISTS=1; '
            + f'for b in {q(directory)}/*/; do [ -d "$b" ] && n=$b; done; else echo EXISTS=0; fi; '
            + 'f="$p/.portal-ops-probe.$$"; if [ -w "$p" ] && : > "$f" 2>/dev/null; then '
            + 'rm -f "$f"; echo WRITABLE=1; else echo WRITABLE=0; fi; '
            + 'echo DF; df -P "$p"; [ -z "$n" ] || { echo DU; du -sk "$n"; }'
        )
        result = await ctx.sh(name, script)
        head, _, rest = result.stdout.partition("\nDF\n")
        values = _key_values(head)
        disk, _, newest = rest.partition("\nDU\n")
        try:
            avail_kb = parse_df(disk).avail_kb
        except ValueError:
            return errored(f"cannot inspect {directory}: {result.tail(2)}")
        newest_kb = int(newest.split()[0]) if newest.split() and newest.split()[0].isdigit() else 0
        need_mb = max(vc.backup_min_free_mb, newest_kb * 1.2 / 1024)
        avail_mb = round(avail_kb / 1024, 1)
        threshold = f"writable, >= {need_mb:.0f} MB free"
        meta = {"path": directory, "newest_backup_kb": newest_kb, "need_mb": round(need_mb, 1)}
        exists = values.get("EXISTS") == "1"
        if values.get("WRITABLE") != "1":
            where = directory if exists else f"the nearest existing parent of {directory}"
            return failed(
                f"{where} is not writable",
                value=avail_mb,
                unit="MB free",
                threshold=threshold,
                meta=meta,
            )
        if avail_mb < need_mb:
            return failed(
                f"only {avail_mb:g} MB free for backups in {directory} (need {need_mb:.0f} MB)",
                value=avail_mb,
                unit="MB free",
                threshold=threshold,
                meta=meta,
            )
        if not exists:
            return passed(
                f"{directory} will be created (its parent is writable), {avail_mb:g} MB free",
                value=avail_mb,
                unit="MB free",
                threshold=threshold,
                meta=meta,
            )
        return passed(
            f"{directory} writable, {avail_mb:g} MB free",
            value=avail_mb,
            unit="MB free",
            threshold=threshold,
            meta=meta,
        )

    return await ctx.each_host(one)


def _key_values(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


@check(
    "P12",
    "Web and app servers: config valid and running",
    "services",
    weight=7,
    critical=True,
    scope="host",
)
async def servers(ctx: Context) -> list[Outcome]:
    probes = ctx.vc.server_commands
    if not probes:
        return [
            skipped(
                "no server_commands configured (e.g. sudo -n nginx -t,"
                " systemctl is-active php8.3-fpm nginx)"
            )
        ]
    return await probes_per_host(ctx, [("", p, "all") for p in probes])


@check(
    "Q10",
    "Database and cache reachable from the app",
    "services",
    weight=6,
    critical=True,
    scope="host",
)
async def app_dependencies(ctx: Context) -> list[Outcome]:
    vc = ctx.vc
    probes: list[tuple[str, CommandProbe, Where]] = []
    if vc.database is not None:
        probes.append(("database", vc.database, "all"))
    if vc.cache is not None:
        probes.append(("cache", vc.cache, "all"))
    if not probes:
        return [skipped("no database or cache command configured")]
    return await probes_per_host(ctx, probes)


@check("Q11", "Queue workers running", "services", weight=5)
async def queue_workers(ctx: Context) -> list[Outcome]:
    probe = ctx.vc.queue_command
    if probe is None:
        return [
            skipped(
                "no queue_command configured (e.g. php artisan horizon:status,"
                " supervisorctl status 'laravel-worker:*')"
            )
        ]
    return await ctx.run_probe(probe, "primary")


@check("Q12", "Scheduler in place", "services", weight=3)
async def scheduler(ctx: Context) -> list[Outcome]:
    probe = ctx.vc.scheduler_command
    if probe is None:
        return [skipped("no scheduler_command configured (e.g. crontab -l | grep -q schedule:run)")]
    return await ctx.run_probe(probe, "primary")


@check("Q13", "App server pool healthy, not saturated", "services", weight=5, scope="host")
async def app_pool(ctx: Context) -> list[Outcome]:
    vc = ctx.vc
    if vc.pool_command is not None:
        return await ctx.run_probe(vc.pool_command, "all")
    if not vc.pool_status_url:
        return [skipped("no pool_status_url (php-fpm status page) or pool_command configured")]
    template = vc.pool_status_url

    async def one(name: str) -> Outcome:
        host = ctx.host_config(name)
        url = template.format(address=host.address, name=host.name)
        threshold = "listen queue 0 or idle workers left"
        response = await ctx.http.get(url)
        if not 200 <= response.status_code < 300:
            return answered(failed, url, response.status_code, threshold)
        stats = pool_stats(response.text)
        if not stats:
            return answered(passed, url, response.status_code, threshold)
        queue = int(stats.get("listen queue", 0))
        idle = int(stats.get("idle processes", 1))
        active = int(stats.get("active processes", 0))
        total = int(stats.get("total processes", active + idle))
        maxed = int(stats.get("max children reached", 0))
        summary = f"{active}/{total} busy, listen queue {queue}, max children reached {maxed}"
        meta = {k: stats[k] for k in sorted(stats) if k != "processes"}
        if queue > 0 and idle == 0:
            return failed(
                f"saturated: {summary}", value=queue, unit="queued", threshold=threshold, meta=meta
            )
        if maxed > 0 or queue > 0:
            return warned(summary, value=queue, unit="queued", threshold=threshold, meta=meta)
        return passed(summary, value=queue, unit="queued", threshold=threshold, meta=meta)

    return await ctx.each_host(one, needs_ssh=False)


def pool_stats(text: str) -> dict[str, Any]:
    """php-fpm status fields from its JSON (``?json``) or plain ``key: value`` page."""
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            return {str(k): v for k, v in data.items() if not isinstance(v, list | dict)}
    except ValueError:
        pass
    stats: dict[str, Any] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip().isdigit():
            stats[key.strip()] = int(value.strip())
    return stats if "listen queue" in stats or "active processes" in stats else {}
