"""The ``portal-ops`` command. Subcommands live in ``tui/commands/`` and load lazily, so
``portal-ops feature list`` never pays for importing Textual.

Exit codes: 0 ok / go, 1 no-go or failed before any change, 2 usage or config error,
3 rolled back cleanly, 4 partial or needs a person (see tui/commands/common.py).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import NamedTuple

import click


class Entry(NamedTuple):
    """Where a subcommand lives, and its one-line summary for ``--help``: listing the
    commands must not import them (that would load the engine, asyncssh and Textual).
    tests/test_cli_startup.py checks each summary against the command's own."""

    target: str  # "module:attribute"; each module defines one click command or group
    summary: str


COMMANDS: dict[str, Entry] = {
    "ui": Entry(
        "tui.commands.ui:ui",
        "Open the control room on the configured portal: deploy, watch, roll back.",
    ),
    "watch": Entry(
        "tui.commands.ui:watch", "Follow a deployment another portal-ops is running, read-only."
    ),
    "deploy": Entry(
        "tui.commands.deploy:deploy",
        "Deploy the portal: the nine phases, on every host, in batches.",
    ),
    "rollback": Entry(
        "tui.commands.deploy:rollback",
        "Roll back DEPLOYMENT_ID (default: the newest deployment the hosts record) to the "
        "release live before it.",
    ),
    "resume": Entry(
        "tui.commands.deploy:resume",
        "Continue an unfinished deployment from the phase where it stopped (exit codes as deploy).",
    ),
    "history": Entry(
        "tui.commands.history:history",
        "List past deployments, newest first (dry runs are plans: only with --all).",
    ),
    "show": Entry(
        "tui.commands.history:show",
        "Show one deployment in full: phases, hosts, durations, outcome, operator.",
    ),
    "unlock": Entry(
        "tui.commands.lock:unlock",
        "Remove the deploy lock from every host and Redis, after confirmation.",
    ),
    "config": Entry("tui.commands.config:config", "Configuration commands."),
    "demo": Entry(
        "tui.commands.demo:demo",
        "Run portal-ops on a sandbox portal on this machine: no config, no root, no services.",
    ),
    "monitor": Entry(
        "tui.commands.monitor:monitor",
        "Follow the portal's health live: p50/p95/p99, errors and throughput per host and in "
        "total, judged by the [monitor] rules; a report at the end (or on Ctrl-C).",
    ),
    "notify": Entry(
        "tui.commands.notify:notify",
        "Send a deployment notification: EVENT is one of pre-deployment, deployment-success, "
        "deployment-failed, rollback, emergency (also rollback-started, rollback-finished, "
        "incident, check-failed).",
    ),
    "feature": Entry(
        "tui.commands.feature:feature",
        "Feature flags: percentage rollouts, overrides, the kill switch, audit, usage.",
    ),
    "validate": Entry(
        "tui.commands.validate:validate",
        "Pre- and post-deployment checks: weighted score and go/no-go (exit 0 go, 1 no-go).",
    ),
    "completion": Entry(
        "tui.commands.completion:completion",
        "Print the completion script of SHELL (bash, zsh, fish; default: $SHELL's).",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            if name in ("ui", "watch") and sys.stdin.isatty() and sys.stdout.isatty():
                from .startup import hold_gc

                hold_gc()  # until the room's first frame, imports included (tui/startup.py)
            module, attr = COMMANDS[name].target.split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands' list from the summaries above, importing none of them."""
        width = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        rows = []
        for name in self.list_commands(ctx):
            if name in COMMANDS:
                stand_in = click.Command(name, help=COMMANDS[name].summary)
                rows.append((name, stand_in.get_short_help_str(width)))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(width)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="portal-ops")
@click.option("--no-color", is_flag=True, help="No colours (also: NO_COLOR set to anything).")
@click.option("--debug", is_flag=True, help="Debug log on stderr as well as in the log file.")
@click.pass_context
def cli(ctx: click.Context, no_color: bool, debug: bool) -> None:
    """portal-ops: zero-downtime deployments of a web portal, from a terminal control room."""
    if no_color or os.environ.get("NO_COLOR"):
        ctx.color = False  # every click.echo/secho below strips its styles
        os.environ["NO_COLOR"] = "1"  # and the Textual UI follows NO_COLOR
    from .commands.logfile import setup_logging

    setup_logging(debug, ctx.invoked_subcommand)
    if ctx.invoked_subcommand not in (
        None,
        "ui",
        "watch",
        "demo",
        "completion",
    ):  # full-screen apps excepted
        from backend.redact import RedactingStream

        sys.stdout = RedactingStream(sys.stdout)
        sys.stderr = RedactingStream(sys.stderr)
    if ctx.invoked_subcommand is None:
        ui = cli.get_command(ctx, "ui")
        if ui is None:
            click.echo(ctx.get_help())
            return
        ctx.invoke(ui)


def main() -> None:
    try:
        cli.main(prog_name="portal-ops", standalone_mode=False)
    except click.ClickException as exc:
        if "--json" in sys.argv[1:]:
            from .commands.common import print_error_json

            print_error_json(exc.format_message(), exc.exit_code)
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
