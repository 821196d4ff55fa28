"""``portal-ops ui`` (also plain ``portal-ops``) and ``portal-ops watch``: the control room.

Textual is imported only here, inside the commands, after ``--fps`` has been put in the
environment (Textual reads ``TEXTUAL_FPS`` once, at import).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from .common import EXIT_USAGE, F, config_option, fail, load_or_exit

THEME_HELP = (
    "Colour theme: portal-dark (default), portal-light, portal-high-contrast, ansi-dark or"
    " ansi-light (16 colours), or any Textual theme. Also $PORTAL_OPS_THEME. NO_COLOR is"
    " respected."
)


def _options(func: F) -> F:
    func = click.option("--theme", envvar="PORTAL_OPS_THEME", metavar="NAME", help=THEME_HELP)(func)
    func = click.option(
        "--refresh",
        type=click.FloatRange(0.25, 10.0),
        default=1.0,
        show_default=True,
        metavar="SECONDS",
        help="Seconds between graph redraws (the [ and ] keys change it live).",
    )(func)
    func = click.option(
        "--fps",
        type=click.IntRange(1, 60),
        default=None,
        metavar="N",
        help="Cap screen updates per second (default 60; try 10 over a slow SSH link).",
    )(func)
    func = click.option(
        "--max-log-lines",
        type=click.IntRange(100, 1_000_000),
        default=10_000,
        show_default=True,
        help="Incident-log lines kept in memory (older ones scroll away).",
    )(func)
    return config_option(func)


def _environment(fps: int | None, watch: bool) -> None:
    if fps is not None:
        os.environ["TEXTUAL_FPS"] = str(fps)
    if watch:  # a watcher on a slow link gains nothing from animations
        os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")


def _flush_interval(fps: int | None) -> float:
    """The panes repaint at most every 0.2 s, or every frame of a lower --fps cap."""
    return max(0.2, 1.0 / fps) if fps else 0.2


def _need_terminal(command: str) -> None:
    """A full-screen room drawn into a pipe is noise: say what to use instead."""
    if sys.stdin.isatty() and sys.stdout.isatty():
        return
    fail(
        f"no terminal: `portal-ops {command}` draws a full-screen room. For text use"
        " `portal-ops history`, `portal-ops show ID --events`, or"
        " `portal-ops deploy`/`rollback` (they print as they go)",
        EXIT_USAGE,
    )


def _check_theme(theme: str | None) -> None:
    if not theme:
        return
    from textual.theme import BUILTIN_THEMES

    from themes import CYCLE

    known = set(CYCLE) | set(BUILTIN_THEMES)
    if theme not in known:
        fail(f"unknown theme {theme!r}; choose one of: {', '.join(sorted(known))}", EXIT_USAGE)


def _theme_hint(config_path: str | None) -> str | None:
    """The config file's ``[ui] theme``, read with tomllib alone before the first frame (the
    models are parsed after it): the room then opens in it instead of switching a moment
    later. Anything unexpected gives None: the parse after the first frame says what is
    wrong, and an overlay's theme (``-e``) still applies then."""
    import tomllib

    from backend.configfiles import discover

    try:
        given = config_path or os.environ.get("PORTAL_OPS_CONFIG")
        path = Path(given) if given else discover()
        if path is None or not path.is_file():
            return None
        name = tomllib.loads(path.read_text(encoding="utf-8")).get("ui", {}).get("theme")
    except (OSError, ValueError, AttributeError):
        return None
    from themes import CYCLE

    return name if isinstance(name, str) and name in CYCLE else None


class _Loader:
    """The config, loaded by the room once its first frame is painted (the models' import
    and the parse were ~0.15 s of CPU before it). What loading prints is kept: a bad config
    raises StartupError with it (printed, exit 2, once the terminal is back), a good one's
    notices (``portal-ops: using …``) are printed when the room closes."""

    def __init__(self, config_path: str | None, *, check_theme: bool) -> None:
        self.config_path = config_path
        self.check_theme = check_theme
        self.notices: list[str] = []

    def __call__(self) -> Any:
        from tui.startup import StartupError

        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                config = load_or_exit(self.config_path, warn=False)  # the room warns
                if self.check_theme:
                    _check_theme(config.ui.theme)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else EXIT_USAGE
            raise StartupError(err.getvalue(), out.getvalue(), code) from None
        self.notices.extend(text for text in (out.getvalue(), err.getvalue()) if text)
        return config


def _run_room(loader: _Loader | None, **options: Any) -> NoReturn:
    """Open the room (its config loaded after the first frame when ``loader``); exit with
    its code, or print what stopped it (a bad config, a bad [ui.keys], an unknown
    deployment id) and exit 2."""
    from tui.app import run_control_room
    from tui.startup import StartupError

    try:
        if loader is not None:
            options["config_loader"] = loader
        code = run_control_room(None, **options)
    except StartupError as exc:  # the config, parsed after the first frame, is bad
        sys.stdout.write(exc.stdout)
        sys.stderr.write(exc.stderr)
        raise SystemExit(exc.code) from None
    except ValueError as exc:  # a bad [ui.keys], an unknown deployment id
        fail(str(exc), EXIT_USAGE)
    finally:
        for notice in loader.notices if loader is not None else ():
            sys.stderr.write(notice)
    raise SystemExit(code)


@click.command()
@_options
def ui(
    config_path: str | None,
    theme: str | None,
    refresh: float,
    fps: int | None,
    max_log_lines: int,
) -> None:
    """Open the control room on the configured portal: deploy, watch, roll back.

    Keys: ? lists them all. Exit code 0, or 1 when quitting cancelled a running deployment
    (the lock and the journal stay: `portal-ops resume ID` or `portal-ops rollback ID`).
    """
    _need_terminal("ui")
    _environment(fps, watch=False)
    _check_theme(theme)
    _run_room(
        _Loader(config_path, check_theme=not theme),
        theme=theme,
        first_theme=None if theme else _theme_hint(config_path),
        check_unfinished=True,
        graph_interval=refresh,
        max_log_lines=max_log_lines,
        flush_interval=_flush_interval(fps),
    )


@click.command()
@click.argument("deployment_id", required=False, metavar="[DEPLOY_ID]")
@click.option(
    "--source",
    type=click.Choice(["auto", "journal", "redis"]),
    default="auto",
    show_default=True,
    help="Where the events come from: the journal on this machine, or the Redis stream"
    " ([redis] url). auto: the journal when it knows the deployment, else Redis.",
)
@_options
def watch(
    deployment_id: str | None,
    source: str,
    config_path: str | None,
    theme: str | None,
    refresh: float,
    fps: int | None,
    max_log_lines: int,
) -> None:
    """Follow a deployment another portal-ops is running, read-only.

    Without DEPLOY_ID: the running deployment, else the latest, switching to the next one
    when it starts. Deploy, rollback and flag changes are absent in this mode.
    """
    _need_terminal("watch")
    _environment(fps, watch=True)
    _check_theme(theme)
    has_config = bool(config_path) or Path("portal-ops.toml").exists()
    _run_room(
        _Loader(config_path, check_theme=not theme) if has_config else None,
        first_theme=None if theme or not has_config else _theme_hint(config_path),
        watch=True,
        deployment_id=deployment_id,
        theme=theme,
        check_unfinished=has_config,
        source=source,
        graph_interval=refresh,
        max_log_lines=max_log_lines,
        flush_interval=_flush_interval(fps),
    )
