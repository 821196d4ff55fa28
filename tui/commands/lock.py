"""``portal-ops unlock``: clear a stale deploy lock, after saying who holds it and since when."""

from __future__ import annotations

import asyncio
import sys

import click

from backend.engine import Engine
from backend.engine.layout import Layout
from backend.engine.lock import read_locks, redis_release
from backend.transport import connect_all

from .common import EXIT_FAILED, config_option, load_or_exit


@click.command()
@config_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def unlock(config_path: str | None, yes: bool) -> None:
    """Remove the deploy lock from every host (and Redis), after confirmation."""
    config = load_or_exit(config_path)
    engine = Engine(config)

    async def read() -> tuple[dict, list]:
        hosts = engine.make_hosts()
        failures = await connect_all(list(hosts.values()))
        holders = await read_locks(config, {n: h for n, h in hosts.items() if n not in failures})
        await _close(hosts)
        return hosts, holders, failures  # type: ignore[return-value]

    _hosts, holders, failures = asyncio.run(read())  # type: ignore[misc]
    for exc in failures.values():
        click.echo(f"warning: {exc}", err=True)
    if not holders:
        click.echo("No deploy lock is held.")
        return
    for holder in holders:
        click.echo(f"Lock {holder.describe()}")
    ids = {h.owner.get("deployment_id") for h in holders}
    running = [d for d in engine.journal.unfinished(config.portal.name) if d["id"] in ids]
    if running:
        click.echo(
            f"The journal shows {', '.join(d['id'] for d in running)} unfinished: prefer"
            " `portal-ops resume ID` or `portal-ops rollback ID`, which keep the lock consistent."
        )
    if not yes and not click.confirm("Remove this lock?", default=False):
        click.echo("Left in place.")
        sys.exit(EXIT_FAILED)

    async def remove() -> None:
        hosts = engine.make_hosts([h.host for h in holders])  # a new event loop: new connections
        for holder in holders:
            layout = Layout(config.deploy_path(config.host(holder.host)))
            await hosts[holder.host].run(layout.lock_force_remove(), timeout=30, retry_safe=True)
        redis_release(config, "", force=True)
        from backend.events import Event, Kind

        engine.bus.emit(
            Event(
                Kind.LOCK,
                deployment_id=next(iter(ids)) or None,
                run="deploy",
                data={
                    "action": "force-removed",
                    "by": str(engine.operator),
                    "holders": [h.owner | {"token": "…"} for h in holders],
                },
            )
        )
        await _close(hosts)

    asyncio.run(remove())
    click.echo(f"Lock removed from {', '.join(h.host for h in holders)} (recorded in the journal).")


async def _close(hosts: dict) -> None:
    await asyncio.gather(*(h.close() for h in hosts.values()), return_exceptions=True)
