"""The ``portal-ops`` command. Subcommands live in ``tui/commands/`` and load lazily, so
``portal-ops feature list`` never pays for importing Textual.

Exit codes: 0 ok / go, 1 no-go or failed before any change, 2 usage or config error,
3 rolled back cleanly, 4 partial or needs a person (see tui/commands/common.py).
"""

from __future__ import annotations

import importlib
import os
import sys

import click

# name -> "module:attribute"; each module defines one click command or group.
COMMANDS: dict[str, str] = {
    "ui": "tui.commands.ui:ui",
    "watch": "tui.commands.ui:watch",
    "deploy": "tui.commands.deploy:deploy",
    "rollback": "tui.commands.deploy:rollback",
    "resume": "tui.commands.deploy:resume",
    "history": "tui.commands.history:history",
    "show": "tui.commands.history:show",
    "unlock": "tui.commands.lock:unlock",
    "config": "tui.commands.config:config",
    "demo": "tui.commands.demo:demo",
    "monitor": "tui.commands.monitor:monitor",
    "notify": "tui.commands.notify:notify",
    "feature": "tui.commands.feature:feature",
    "validate": "tui.commands.validate:validate",
    "completion": "tui.commands.completion:completion",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module, attr = COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


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

        sys.stdout = RedactingStream(sys.stdout)  # type: ignore[assignment]
        sys.stderr = RedactingStream(sys.stderr)  # type: ignore[assignment]
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
