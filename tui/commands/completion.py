"""``portal-ops completion bash|zsh|fish``: the shell's completion script, and the completers
that name deployment ids and feature flags from the journal.

Commands and options come from click itself; ids and flag names are read from the state
dir's journal, read-only and quietly (a completion must never print an error or wait).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import click
from click.shell_completion import CompletionItem, get_completion_class

SHELLS = ("bash", "zsh", "fish")
INSTALL = {
    "bash": 'eval "$(portal-ops completion bash)"   # in ~/.bashrc',
    "zsh": 'eval "$(portal-ops completion zsh)"    # in ~/.zshrc',
    "fish": "portal-ops completion fish > ~/.config/fish/completions/portal-ops.fish",
}


def _journal(ctx: click.Context) -> Path | None:
    """The journal of the config on the command line (or found), else the default state."""
    from backend.paths import state_dir

    directory = None
    try:
        from backend.config import load_config

        config_path = ctx.params.get("config_path")
        directory = load_config(config_path).state.dir
    except Exception:  # no or bad config: the default state dir
        directory = None
    try:
        path = state_dir(directory) / "journal.db"
    except Exception:
        return None
    return path if path.is_file() else None


def _query(ctx: click.Context, sql: str) -> list[str]:
    path = _journal(ctx)
    if path is None:
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.2) as db:
            return [str(row[0]) for row in db.execute(sql)]
    except sqlite3.Error:
        return []


def complete_deployment_ids(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    rows = _query(ctx, "SELECT id FROM deployments ORDER BY started_at DESC LIMIT 50")
    return [CompletionItem(i) for i in rows if i.startswith(incomplete)]


def complete_flag_names(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    rows = _query(ctx, "SELECT name FROM flags ORDER BY name")
    return [CompletionItem(n) for n in rows if n.startswith(incomplete)]


@click.command()
@click.argument("shell", type=click.Choice(SHELLS), required=False)
def completion(shell: str | None) -> None:
    """Print the completion script of SHELL (bash, zsh, fish; default: $SHELL's).

    \b
    bash: eval "$(portal-ops completion bash)"        (in ~/.bashrc)
    zsh:  eval "$(portal-ops completion zsh)"         (in ~/.zshrc)
    fish: portal-ops completion fish > ~/.config/fish/completions/portal-ops.fish

    Completes commands, options, deployment ids (rollback, resume, show) and flag names.
    """
    from ..cli import cli

    shell = shell or Path(os.environ.get("SHELL", "bash")).name
    if shell not in SHELLS:
        raise click.BadParameter(f"{shell!r}: give one of {', '.join(SHELLS)}", param_hint="SHELL")
    cls = get_completion_class(shell)
    assert cls is not None
    script = cls(cli, {}, "portal-ops", "_PORTAL_OPS_COMPLETE").source()
    click.echo(script)
