"""``portal-ops unlock``: clear a stale deploy lock (hosts and Redis), after saying who holds
it, since when, and whether its run still renews it.

A stale lock (heartbeat older than ``[lock] lease_seconds``) is removed after a yes. A live
one only with ``--force`` and the deployment id typed back: its run is alive somewhere, and
removing its lock lets a second deploy race it. Removal is compare-and-delete with the token
shown, so a lock taken meanwhile by a new holder is never removed by mistake."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from backend.engine import Engine
from backend.engine.layout import Layout
from backend.engine.lock import LockHolder, read_locks, redis_release
from backend.events import Event, Kind
from backend.transport import Host, connect_all

from .common import EXIT_FAILED, config_option, load_or_exit


@click.command()
@config_option
@click.option("--yes", is_flag=True, help="Do not ask before removing a STALE lock.")
@click.option(
    "--force",
    is_flag=True,
    help="Also remove a LIVE lock (its run still renews it); asks for its deployment id.",
)
def unlock(config_path: str | None, yes: bool, force: bool) -> None:
    """Remove the deploy lock from every host and Redis, after confirmation."""
    config = load_or_exit(config_path)
    engine = Engine(config)

    async def read() -> tuple[list[LockHolder], dict[str, Any]]:
        hosts = engine.make_hosts()
        failures = await connect_all(list(hosts.values()))
        holders = await read_locks(config, {n: h for n, h in hosts.items() if n not in failures})
        await _close(hosts)
        return holders, failures

    holders, failures = asyncio.run(read())
    for exc in failures.values():
        click.echo(f"warning: {exc}", err=True)
    if not holders:
        click.echo("No deploy lock is held (hosts" + (" and Redis)." if config.redis.url else ")."))
        return
    for holder in holders:
        click.echo(f"Lock {holder.describe()}")
    live = [h for h in holders if not h.stale]
    ids = sorted({str(h.owner.get("deployment_id") or "?") for h in holders})
    if live and not force:
        click.echo(
            f"The lock of {', '.join(ids)} is LIVE: its run renewed it within the last"
            f" {config.lock.lease_seconds:g}s. Let it finish or stop it; `portal-ops unlock"
            " --force` removes it anyway (a second deploy could then race it).",
            err=True,
        )
        sys.exit(EXIT_FAILED)
    if live:
        typed = click.prompt(
            f"The run of {', '.join(ids)} is alive. Type its deployment id to remove its lock",
            default="",
            show_default=False,
        )
        if typed.strip() not in ids or len(ids) != 1:
            click.echo("Left in place.")
            sys.exit(EXIT_FAILED)
    elif not yes and not click.confirm("Remove this stale lock?", default=False):
        click.echo("Left in place.")
        sys.exit(EXIT_FAILED)

    removed, changed = asyncio.run(_remove(engine, holders))
    engine.bus.emit(
        Event(
            Kind.LOCK,
            deployment_id=ids[0] if ids[0] != "?" else None,
            run="deploy",
            data={
                "action": "force-removed" if live else "stale-removed",
                "by": str(engine.operator),
                "holders": [
                    {k: v for k, v in h.owner.items() if k != "token"} | {"where": h.host}
                    for h in holders
                ],
                "changed_meanwhile": changed,
            },
        )
    )
    if removed:
        click.echo(f"Lock removed from {', '.join(removed)} (recorded in the journal).")
    if changed:
        click.echo(
            f"Left in place on {', '.join(changed)}: the lock there changed hands meanwhile.",
            err=True,
        )
        sys.exit(EXIT_FAILED)


async def _remove(engine: Engine, holders: list[LockHolder]) -> tuple[list[str], list[str]]:
    """Compare-and-delete with each holder's token; (removed, changed meanwhile)."""
    config = engine.config
    on_hosts = [h for h in holders if h.host != "redis"]
    hosts = engine.make_hosts([h.host for h in on_hosts]) if on_hosts else {}
    removed: list[str] = []
    changed: list[str] = []
    for holder in on_hosts:
        layout = Layout(config.deploy_path(config.host(holder.host)))
        token = holder.owner.get("token")
        command = layout.lock_release(str(token)) if token else layout.lock_force_remove()
        result = await hosts[holder.host].run(command, timeout=30, retry_safe=True)
        out = result.stdout
        (removed if ("RELEASED" in out or "REMOVED" in out) else changed).append(holder.host)
    for holder in holders:
        if holder.host == "redis":
            token = str(holder.owner.get("token") or "")
            ok = await asyncio.to_thread(redis_release, config, token)
            (removed if ok else changed).append("redis")
    await _close(hosts)
    return removed, changed


async def _close(hosts: dict[str, Host]) -> None:
    await asyncio.gather(*(h.close() for h in hosts.values()), return_exceptions=True)
