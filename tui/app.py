"""The control room app: the engine in an App worker, the event feed through the bridge.

Two classes share everything but their bindings: :class:`OperatorRoom` (``portal-ops ui``,
``portal-ops demo``) has every action of the registry; :class:`WatchRoom`
(``portal-ops watch``) is built from the non-dangerous ones only, so deploy, rollback and
flag changes are absent there, and ``check_action`` refuses them as a second guard.

Call :func:`run_control_room` to open a room; the demo passes its sandbox's engine.
Layout: tui/rooms/base.py (what both share), tui/rooms/operator.py, tui/rooms/watch.py,
tui/palette.py (the command palette), tui/screens/ and tui/widgets/ (what they draw);
the room's view model and reducer in tui/viewmodel.py and tui/state.py.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from backend.events import EventBus
from backend.journal import Journal

from .actions import ACTIONS
from .palette import ActionCommands
from .rooms.base import RoomApp
from .rooms.operator import OperatorRoom, build_engine
from .rooms.watch import WatchRoom, watch_feed
from .startup import release_gc

if TYPE_CHECKING:
    from backend.config import Config

__all__ = [
    "ActionCommands",
    "OperatorRoom",
    "RoomApp",
    "WatchRoom",
    "make_room",
    "run_control_room",
    "watch_feed",
]


def make_room(
    config: Config | None,
    *,
    engine: Any = None,
    watch: bool = False,
    deployment_id: str | None = None,
    theme: str | None = None,
    journal: Journal | None = None,
    source: str = "auto",
    **options: Any,
) -> RoomApp:
    """Build (without running) the room for ``config``: a watcher, or an operator room.

    ``config_loader`` in ``options`` instead of a config (an operator room without an
    engine): the room draws its first frame, then loads it (``portal-ops ui``)."""
    if config is None and engine is None and "config_loader" in options:
        if watch:  # the journal and the feed, once the config is loaded
            return WatchRoom(
                None, journal=journal, deployment_id=deployment_id, theme=theme, follow=source,
                **options,
            )  # fmt: skip
        return OperatorRoom(None, journal=journal, theme=theme, **options)
    if journal is None and engine is not None:
        journal = engine.journal
    if journal is None:
        from backend.paths import state_dir

        journal = Journal(state_dir(config.state.dir if config else None) / "journal.db")
    if watch:
        feed, name = watch_feed(config, journal, deployment_id, source)
        return WatchRoom(
            config,
            journal=journal,
            feed=feed,
            deployment_id=deployment_id,
            theme=theme,
            source=name,
            **options,
        )
    if engine is None and config is not None:
        # built once the first frame is painted: the room needs only its bus before that
        bus = EventBus()
        return OperatorRoom(
            config,
            engine_factory=partial(build_engine, config, journal, bus),
            bus=bus,
            journal=journal,
            theme=theme,
            **options,
        )
    return OperatorRoom(config, engine=engine, journal=journal, theme=theme, **options)


def run_control_room(
    config: Config | None,
    *,
    engine: Any = None,
    watch: bool = False,
    deployment_id: str | None = None,
    theme: str | None = None,
    on_exit: Callable[[], Any] | None = None,
    on_app: Callable[[Any], Any] | None = None,
    **options: Any,
) -> int:
    """Open the control room and block until it closes; returns the exit code.

    ``engine``: an :class:`backend.engine.Engine` to drive (the demo passes its sandbox's);
    built from ``config`` when omitted. ``watch``: read-only, following ``deployment_id``
    (or the running/latest one) from the journal or Redis. ``on_exit`` runs after the room
    closes, whatever happened (the demo tears its sandbox down there). ``on_app`` is given
    the room before it runs (the demo's hang-up handler asks it to close).
    """
    try:
        app = make_room(
            config,
            engine=engine,
            watch=watch,
            deployment_id=deployment_id,
            theme=theme,
            **options,
        )
        if on_app is not None:
            on_app(app)
        code = app.run()
        if app.startup_error is not None:  # raised now that the terminal is given back
            raise app.startup_error
        return int(code or 0)
    finally:
        release_gc()  # if the room stopped before its first frame
        if on_exit is not None:
            on_exit()


__all__ = [
    "ACTIONS",
    "OperatorRoom",
    "RoomApp",
    "WatchRoom",
    "make_room",
    "run_control_room",
    "watch_feed",
]
