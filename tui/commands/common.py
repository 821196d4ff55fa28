"""Options and helpers every subcommand shares: config loading, the journal, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from backend.config import Config, ConfigError, load_config
from backend.journal import Journal
from backend.paths import state_dir
from backend.redact import redact

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def config_option(func: F) -> F:
    return click.option(
        "--config",
        "config_path",
        metavar="FILE",
        envvar="PORTAL_OPS_CONFIG",
        help="portal-ops.toml to use (default: $PORTAL_OPS_CONFIG, then ./portal-ops.toml).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(func)


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
    sys.exit(code)


def load_or_exit(config_path: str | None) -> Config:
    """Load the config or print every problem in it and exit 2."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        click.echo(redact(exc.render()), err=True)
        sys.exit(EXIT_USAGE)
    warn_unfinished(config)
    return config


def warn_unfinished(config: Config) -> None:
    """Say so, on stderr, when the journal holds a deployment whose process died before it
    finished (portal-ops killed, SSH session to the bastion lost): its lock is still on the
    hosts and its hosts may be on different releases."""
    try:
        journal = open_journal(config)
        stale = journal.abandoned(config.portal.name)
    except Exception:  # the warning must never stop a command
        return
    from backend.engine.rollback import last_checkpoint

    for row in stale:
        switched = last_checkpoint(journal.events(row["id"])).get("switched") or []
        click.echo(
            f"portal-ops: deployment {row['id']} did not finish (its process {row.get('pid')} is"
            " gone); its deploy lock is still held on the hosts"
            + (
                f"; already switched: {', '.join(switched)}"
                if switched
                else "; no host switched yet"
            )
            + f". Continue: portal-ops resume {row['id']}  |  undo: portal-ops rollback {row['id']}",
            err=True,
        )

    return True


def open_journal(config: Config | None = None) -> Journal:
    directory = state_dir(config.state.dir if config else None)
    return Journal(directory / "journal.db")


def print_json(data: Any) -> None:
    click.echo(redact(json.dumps(data, indent=2, default=str, sort_keys=False)))
