"""Options and helpers every subcommand shares: config loading, the journal, JSON output,
and the exit codes a pipeline reads (the one place they are decided)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from backend.paths import state_dir
from backend.redact import redact

if TYPE_CHECKING:  # loaded when a command runs: `--help` and completion need neither
    from backend.config import Config
    from backend.journal import Journal
    from backend.transport import Host

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILED = 1  # failed (or no-go) before anything changed
EXIT_USAGE = 2  # bad command line or config: nothing was done
EXIT_ROLLED_BACK = 3  # it changed hosts, failed, and was rolled back cleanly
EXIT_NEEDS_PERSON = 4  # partial, paused, interrupted or a rollback that did not finish

_JSON_META = "portal_ops.json"


def exit_code(
    outcome: str,
    rollback: dict[str, Any] | None = None,
    error: str | None = None,
    run: str = "deploy",
) -> int:
    """The exit code of a deploy, resume or rollback from its outcome: CI branches on it.

    A deployment that "failed" after a rollback was attempted, or was interrupted, left
    hosts a person must look at; one that failed with no rollback changed nothing. A
    rollback run (``run="rollback"``) that did not succeed always needs a person.
    """
    if outcome == "succeeded":
        return EXIT_OK
    if outcome == "rolled_back":
        return EXIT_ROLLED_BACK
    if run == "rollback":
        return EXIT_NEEDS_PERSON
    if outcome == "failed" and rollback is None and not (error or "").startswith("interrupted"):
        return EXIT_FAILED
    return EXIT_NEEDS_PERSON


_FLEET_META = "portal_ops.fleet"


def _remember(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        ctx.meta.setdefault(_FLEET_META, {})[key] = value
        return value

    return callback


def config_option(func: F) -> F:
    """``--config``, and what every command shares with it: ``-e/--env`` (an overlay over
    the config) and ``--hosts``/``--roles`` (act on part of the fleet). The last three are
    kept in the click context, where :func:`load_or_exit` applies them: no command's
    signature changes for them."""
    func = click.option(
        "--roles",
        multiple=True,
        metavar="ROLES",
        expose_value=False,
        callback=_remember("roles"),
        help="Act only on hosts with one of these roles (comma-separated, repeatable).",
    )(func)
    func = click.option(
        "--hosts",
        multiple=True,
        metavar="HOSTS",
        expose_value=False,
        callback=_remember("hosts"),
        help="Act only on these hosts (names or patterns like 'web-*'; comma-separated).",
    )(func)
    func = click.option(
        "-e",
        "--env",
        metavar="NAME",
        envvar="PORTAL_OPS_ENV",
        expose_value=False,
        callback=_remember("env"),
        help="Merge portal-ops.NAME.toml over the config (default: $PORTAL_OPS_ENV).",
    )(func)
    return click.option(
        "--config",
        "config_path",
        metavar="FILE",
        envvar="PORTAL_OPS_CONFIG",
        help="portal-ops.toml to use (default: $PORTAL_OPS_CONFIG, then portal-ops.toml in"
        " this directory or a parent, then ~/.config/portal-ops/).",
    )(func)


def remember_json(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    """Note JSON mode where fail() and load_or_exit() can see it, so errors come as JSON."""
    if value:
        ctx.meta[_JSON_META] = True
    return value


def json_mode() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(_JSON_META))


def json_option(func: F) -> F:
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        callback=remember_json,
        help="Print the result as JSON on stdout; progress goes to stderr.",
    )(func)


def events_option(func: F) -> F:
    return click.option(
        "--events",
        is_flag=True,
        help="Progress as JSON lines (one event each) on stderr instead of text.",
    )(func)


def print_error_json(message: str, code: int, **extra: Any) -> None:
    print_json({"error": message, "exit_code": code, **extra})


def checked_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback: an id given on the command line must be a plain id (exit 2 if not)."""
    from backend.inputs import InputError, check_id

    if value is None or value == "":
        return value
    try:
        return check_id(value, (param.name or "id").upper())
    except InputError as exc:
        raise click.BadParameter(str(exc)) from None


def checked_text(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback: operator text (reason, message) is one printable line, capped."""
    from backend.inputs import InputError, check_text

    if not value:
        return value
    try:
        return check_text(value, (param.name or "text").upper())
    except InputError as exc:
        raise click.BadParameter(str(exc)) from None


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(redact(f"portal-ops: {message}"), err=True)
    if json_mode():
        print_error_json(redact(message), code)
    sys.exit(code)


def load_or_exit(config_path: str | None, *, warn: bool = True) -> Config:
    """Load the config (overlay and ``--hosts``/``--roles`` applied) or print every problem
    in it and exit 2. ``warn=False``: no crash warning here (the control room gives it once
    its first frame is painted)."""
    from backend.config import ConfigError, load_config  # only when used

    ctx = click.get_current_context(silent=True)
    fleet = (ctx.meta.get(_FLEET_META) if ctx is not None else None) or {}
    try:
        config = load_config(config_path, environment=fleet.get("env") or None)
    except ConfigError as exc:
        click.echo(redact(exc.render()), err=True)
        if json_mode():
            print_error_json(
                redact(f"{exc.path}: invalid configuration"),
                EXIT_USAGE,
                problems=[redact(str(p)) for p in exc.problems],
            )
        sys.exit(EXIT_USAGE)
    if not config_path and Path(config.source).resolve().parent != Path.cwd().resolve():
        click.echo(f"portal-ops: using {config.source}", err=True)  # found by discovery
    from backend.fleet.limit import LimitError, limit_hosts, split

    try:
        config = limit_hosts(config, split(fleet.get("hosts")), split(fleet.get("roles")))
    except LimitError as exc:
        fail(str(exc))
    if warn:
        warn_unfinished(config)
    return config


# commands that read the hosts for the crash warning even when this machine's journal knows
# of no unfinished deployment (one started from CI or a laptop that died)
HOST_WARNING_COMMANDS = frozenset({"deploy", "unlock"})


def warn_unfinished(config: Config) -> None:
    """Say so, on stderr, when a deployment stopped without finishing (portal-ops killed, the
    SSH session to the bastion lost): its lock is still on the hosts and they may be on
    different releases, some drained. The hosts' records say which, so the warning names
    the switched and drained hosts from any machine; this machine's journal only tells which
    of its own runs died, and so when to look."""
    for line in unfinished_warnings(config):
        click.echo(line, err=True)


def unfinished_warnings(config: Config, journal: Journal | None = None) -> list[str]:
    """The lines of :func:`warn_unfinished` (the control room shows them in the room)."""
    found = _stale_runs(config, journal)
    if found is None:
        return []
    journal, dead = found
    from backend.engine.rollback import unfinished_on_hosts

    try:
        views = asyncio.run(asyncio.wait_for(unfinished_on_hosts(config, set(dead)), 30))
    except Exception:  # hosts unreachable (or a loop running): the journal's view
        views = None
    return _warning_lines(journal, dead, views)


async def unfinished_warnings_on(
    config: Config, hosts: dict[str, Host], journal: Journal | None = None
) -> list[str]:
    """:func:`unfinished_warnings` read through ``hosts``, in the caller's event loop, left
    connected: a deployment goes on with them instead of logging in to every host again."""
    found = _stale_runs(config, journal)
    if found is None:
        return []
    journal, dead = found
    from backend.engine.rollback import unfinished_on_hosts

    try:
        views = await asyncio.wait_for(unfinished_on_hosts(config, set(dead), hosts), 30)
    except Exception:  # hosts unreachable: the journal's view
        views = None
    return _warning_lines(journal, dead, views)


def _stale_runs(config: Config, journal: Journal | None) -> tuple[Journal, dict[str, Any]] | None:
    """The journal and the runs it saw die (by id); None when the hosts need no look."""
    try:
        journal = journal or open_journal(config)
        stale = journal.abandoned(config.portal.name)
    except Exception:  # the warning must never stop a command
        return None
    context = click.get_current_context(silent=True)
    command = context.info_name if context is not None else None
    if not stale and command not in HOST_WARNING_COMMANDS:
        return None
    return journal, {str(row["id"]): row for row in stale}


def _warning_lines(journal: Journal, dead: dict[str, Any], views: list[Any] | None) -> list[str]:
    lines: list[str] = []
    if views is not None:
        for view in views:
            row = dead.pop(view.deployment_id, None)
            if row is None and view.pid and view.machine == _machine():
                from backend.journal import process_alive

                if process_alive(view.pid):
                    continue  # this machine's run, alive: not a crash
            who = (
                f"its process {row.get('pid')} is gone"
                if row is not None
                else f"started by {view.operator or '?'} on {view.machine or '?'}"
            )
            lines.append(
                _warning(
                    view.deployment_id,
                    f"did not finish ({who}; {view.status} on the hosts at phase {view.number},"
                    f" {view.phase})",
                    view.live_on,
                    view.drained,
                )
            )
    for row in dead.values():  # the hosts could not be read: what this journal recorded
        checkpoint = journal.last_checkpoint(row["id"])
        switched = list(checkpoint.get("switched") or [])
        what = f"did not finish (its process {row.get('pid')} is gone)"
        lines.append(_warning(row["id"], what, switched, None))
    return lines


def _machine() -> str:
    from backend.identity import current_operator

    return current_operator().host


def _warning(deployment_id: str, what: str, switched: list[str], drained: list[str] | None) -> str:
    parts = [f"portal-ops: deployment {deployment_id} {what}; its deploy lock is still held"]
    parts.append("switched: " + (", ".join(switched) if switched else "none"))
    if drained is not None:
        parts.append("drained: " + (", ".join(drained) if drained else "none"))
    return (
        "; ".join(parts)
        + f". Continue: portal-ops resume {deployment_id}  |  undo: portal-ops rollback"
        f" {deployment_id}"
    )


def open_journal(config: Config | None = None) -> Journal:
    from backend.journal import Journal

    directory = state_dir(config.state.dir if config else None)
    return Journal(directory / "journal.db")


def print_json(data: Any) -> None:
    click.echo(redact(json.dumps(data, indent=2, default=str, sort_keys=False)))
