"""``portal-ops deploy``, ``rollback`` and ``resume``: the engine from the command line."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

import click

from backend.inputs import is_id, printable

from .ci import conclude
from .common import (
    checked_id,
    checked_text,
    config_option,
    events_option,
    fail,
    json_option,
    load_or_exit,
    print_json,
    unfinished_warnings_on,
)
from .completion import complete_deployment_ids
from .printer import progress_printer

if TYPE_CHECKING:  # the engine loads when a command runs: `--help` and completion skip it
    from backend.config import Config, HostConfig
    from backend.engine import Engine
    from backend.transport import Host


class _Handover:
    """The hosts the crash warning logs in to, handed to the run (once each): the warning
    reads every host before a deploy (and before a rollback or resume after a crash), and
    the run logs in to every host again otherwise (at 50 hosts ~0.7 s before phase 1)."""

    def __init__(self) -> None:
        self.hosts: dict[str, Host] = {}

    def factory(self, config: Config, host: HostConfig) -> Host:
        from backend.transport import make_host

        return self.hosts.pop(host.name, None) or make_host(config, host)

    async def warn(self, engine: Engine) -> None:
        """The crash warning (see common.warn_unfinished), in the deployment's event loop."""
        from backend.transport import make_host

        config = engine.config
        self.hosts = {h.name: make_host(config, h) for h in config.hosts}
        try:
            lines = await unfinished_warnings_on(config, self.hosts, engine.journal)
        except Exception:  # the warning must never stop a command
            lines = []
        for line in lines:
            click.echo(line, err=True)

    async def close(self) -> None:
        """Whatever the deployment did not take (a dry run takes none)."""
        left, self.hosts = self.hosts, {}
        await asyncio.gather(*(h.close() for h in left.values()), return_exceptions=True)


def _engine(
    config_path: str | None,
    as_json: bool,
    verbose: bool = False,
    events: bool = False,
    handover: _Handover | None = None,
) -> Engine:
    from backend.engine import Engine

    # with a handover, the crash warning is given in the run's loop (see _Handover)
    config = load_or_exit(config_path, warn=handover is None)
    engine = Engine(config, host_factory=handover.factory if handover else None)
    engine.bus.subscribe(progress_printer(as_json, events, verbose))
    _attach_notifier(engine)
    return engine


def _run(engine: Engine, coro: Any, handover: _Handover | None = None) -> Any:
    """Run the engine, publishing its events to the Redis stream for watchers on other
    machines (when [redis] url is set), then give notifications their bounded time."""

    async def main() -> Any:
        if handover is not None:
            await handover.warn(engine)
        publisher = None
        if engine.config.redis.url:
            from backend.feed import RedisPublisher, stream_key

            publisher = RedisPublisher(
                engine.bus, engine.config.redis.url, stream=stream_key(engine.config.redis.prefix)
            ).start()
        try:
            return await coro
        finally:
            if handover is not None:
                await handover.close()
            if publisher is not None:
                await publisher.stop()
            notifier = getattr(engine, "notifier", None)
            if notifier is not None:
                await notifier.aclose()

    return asyncio.run(main())


def _attach_notifier(engine: Engine) -> None:
    """Send the engine's notifications when [notify] configures channels, and the deploy
    metrics when [metrics] names a destination. Without them, neither is loaded: the
    notifier's httpx (with rich and pygments) and Jinja, and prometheus-client, are 9 MB
    and 0.2 s a deployment would pay for nothing."""
    if engine.config.notify.channels:
        from backend.notify import Notifier

        notifier = Notifier.from_config(engine.config, engine.bus)
        notifier.attach(engine.bus)
        engine.notifier = notifier  # type: ignore[attr-defined]
    if engine.config.metrics.enabled:  # textfile and/or Pushgateway
        from backend.observe.metrics import attach_metrics

        attach_metrics(engine.config, engine.bus)


@click.command()
@config_option
@click.option("--revision", help="Git revision to deploy (default: [portal] revision).")
@click.option(
    "--dry-run", is_flag=True, help="Print every command a real run would execute; change nothing."
)
@click.option(
    "--force",
    is_flag=True,
    help="Emergency: deploy even if pre-deployment validation says no-go (recorded).",
)
@click.option(
    "--skip-validation", is_flag=True, help="Emergency: skip the pre-deployment checks (recorded)."
)
@click.option("-v", "--verbose", is_flag=True, help="Stream every host's output, prefixed by host.")
@json_option
@events_option
def deploy(
    config_path: str | None,
    revision: str | None,
    dry_run: bool,
    force: bool,
    skip_validation: bool,
    verbose: bool,
    as_json: bool,
    events: bool,
) -> None:
    """Deploy the portal: the nine phases, on every host, in batches.

    Exit 0 succeeded, 1 failed before any change, 3 rolled back, 4 needs a person."""
    handover = _Handover()
    engine = _engine(config_path, as_json, verbose, events, handover)
    result = _run(
        engine,
        engine.deploy(
            revision=revision, dry_run=dry_run, force=force, skip_validation=skip_validation
        ),
        handover,
    )
    if as_json:
        body = result.to_dict()
        if result.plan is not None:
            body["plan"] = result.plan.to_dict()
        print_json(body)
    else:
        if result.plan is not None:
            click.echo("\n" + result.plan.render())
        click.echo(f"\n{result.deployment_id}: {result.outcome} in {result.seconds:.1f}s")
        if result.error:
            click.echo(f"  {result.error}")
        if result.outcome == "paused":
            click.echo(f"  continue: portal-ops resume {result.deployment_id}")
            click.echo(f"  undo:     portal-ops rollback {result.deployment_id}")
    sys.exit(conclude("deploy", result.to_dict()))


@click.command()
@config_option
@click.argument("deployment_id", required=False, shell_complete=complete_deployment_ids)
@click.argument("reason_arg", metavar="[REASON]", required=False, default="", callback=checked_text)
@click.option(
    "--reason", default="", callback=checked_text, help="Why: recorded, notified, in the report."
)
@click.option("--dry-run", is_flag=True, help="Print the rollback plan; change nothing.")
@click.option(
    "--force",
    is_flag=True,
    help="Roll back a deployment older than the newest live one (the ones in between are"
    " listed first), or one whose process looks alive.",
)
@click.option(
    "--restore-dump",
    is_flag=True,
    help="Restore the verified database dump of phase 2 (loses every write since then).",
)
@json_option
@events_option
def rollback(
    config_path: str | None,
    deployment_id: str | None,
    reason_arg: str,
    reason: str,
    dry_run: bool,
    force: bool,
    restore_dump: bool,
    as_json: bool,
    events: bool,
) -> None:
    """Roll back DEPLOYMENT_ID (default: the newest deployment the hosts record) to the
    release live before it. Works from any machine with the config: the hosts hold the
    deployment's record.

    \b
    portal-ops rollback --reason "Critical issue detected"
    portal-ops rollback bp-20250801-020000-3fa9 --reason "Critical issue detected"

    Exit 0 rolled back, 4 partial or failed (hosts need a person), 2 nothing to roll back.
    """
    if deployment_id and not is_id(deployment_id):
        hint = "" if reason_arg else "; give a reason with --reason"
        fail(f"DEPLOYMENT_ID {printable(deployment_id)!r} is not a deployment id{hint}")
    reason = reason or reason_arg
    handover = _Handover()
    engine = _engine(config_path, as_json, events=events, handover=handover)
    from backend.engine.rollback import RollbackError, rollback_deployment

    try:
        result = _run(
            engine,
            rollback_deployment(
                engine,
                deployment_id,
                reason or "manual rollback",
                trigger={"kind": "manual", "operator": str(engine.operator)},
                dry_run=dry_run,
                force=force,
                restore_dump=restore_dump,
            ),
            handover,
        )
    except RollbackError as exc:
        fail(str(exc))
    if as_json:
        print_json(result.to_dict())
    else:
        if result.plan is not None:
            click.echo("\n" + result.plan.render())
        hosts = ", ".join(f"{n} on {h.get('release')}" for n, h in result.hosts.items())
        click.echo(f"\nRollback {result.outcome} in {result.seconds:.1f}s: {hosts}")
        click.echo(f"  database: {result.database}")
        if result.unreachable:
            click.echo(f"  unreachable (NOT rolled back): {', '.join(result.unreachable)}")
    sys.exit(conclude("rollback", result.to_dict()))


@click.command()
@config_option
@click.argument("deployment_id", callback=checked_id, shell_complete=complete_deployment_ids)
@json_option
@events_option
def resume(config_path: str | None, deployment_id: str, as_json: bool, events: bool) -> None:
    """Continue an unfinished deployment from the phase where it stopped (exit codes as
    deploy)."""
    handover = _Handover()
    engine = _engine(config_path, as_json, events=events, handover=handover)
    from backend.engine.rollback import RollbackError

    try:
        result = _run(engine, engine.resume(deployment_id), handover)
    except RollbackError as exc:
        fail(str(exc))
    if as_json:
        print_json(result.to_dict())
    else:
        click.echo(f"\n{result.deployment_id}: {result.outcome} in {result.seconds:.1f}s")
        if result.error:
            click.echo(f"  {result.error}")
    sys.exit(conclude("resume", result.to_dict()))
