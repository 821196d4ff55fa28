"""What both control rooms share: panes, feed, bridge, themes, the read-only actions.

The feed runs in an App worker and reaches the panes through the bridge; the operator's
room (tui/rooms/operator.py) adds the engine and the dangerous actions, the watcher's
(tui/rooms/watch.py) flashes "read-only" instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App, ScreenError, SystemCommand
from textual.command import Provider
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable
from textual.worker import Worker

from backend.events import EventBus
from backend.feed import BusFeed, Feed, JournalFeed, journal_history, stream_key
from backend.journal import Journal
from themes import CYCLE, DEFAULT_THEME, STYLESHEET, THEMES, derive_variables

from ..actions import DANGEROUS_NAMES, Action, available
from ..bridge import DEFAULT_FLUSH_INTERVAL, Bridge
from ..messages import FeedCaughtUp, FeedFailed, LogLines, RoomChanged, RunFinished
from ..palette import ActionCommands
from ..screens.room import RoomScreen
from ..state import HostView, RoomState, reduce, with_flags
from ..widgets.graphs import HealthGraphs

if TYPE_CHECKING:  # importing the config models costs ~0.13 s: after the first frame
    from backend.config import Config

DEFAULT_GRAPH_INTERVAL = 1.0  # seconds between graph redraws (the `[`/`]` keys change it)
ARM_SECONDS = 2.0  # a single-key change (flag step, resume) needs a second press within this
PREPARE_THEME_AFTER = 0.5  # seconds after the start-up work the next theme is parsed
FLAG_REFRESH_SECONDS = 30.0  # re-read the flag listing (evaluation counts) this often
ROOM_ONLY = frozenset(
    {"focus_pane", "zoom", "filter_log", "cycle_severity", "follow_log", "graph_rate", "wrap_log"}
)


@functools.cache
def _redis_installed() -> bool:
    """Asked once: the footer and the help ask on every key, and a look-up scans sys.path."""
    return importlib.util.find_spec("redis") is not None


class RoomApp(App[int]):
    """What both rooms share: panes, feed, bridge, themes, the read-only actions."""

    CSS_PATH = STYLESHEET
    TITLE = "portal-ops"
    WATCH: ClassVar[bool] = False
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = {
        *App.COMMANDS,
        ActionCommands,
    }

    def __init__(
        self,
        config: Config | None = None,
        *,
        engine: Any = None,
        engine_factory: Callable[[], Any] | None = None,
        bus: EventBus | None = None,
        journal: Journal | None = None,
        feed: Feed | None = None,
        flag_service: Any = None,
        deployment_id: str | None = None,
        theme: str | None = None,
        clock: Callable[[], float] = time.time,
        graph_interval: float = DEFAULT_GRAPH_INTERVAL,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_log_lines: int = 10_000,
        source: str = "",
        load_flags: bool = True,
        live_health: bool = True,
        keymap: dict[str, str] | None = None,
        check_unfinished: bool = False,
        config_loader: Callable[[], Config] | None = None,
        first_theme: str | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        # ``portal-ops ui``: the config is parsed after the first frame (LOADING until then)
        self.config_loader = config_loader if config is None else None
        self.startup_error: Exception | None = None  # why the room closed before it began
        self._keymap_given = keymap
        self._engine = engine
        self._engine_factory = engine_factory if engine is None else None
        self.bus: EventBus | None = engine.bus if engine is not None else bus
        self.journal = journal or (engine.journal if engine is not None else None)
        self.deployment_id = deployment_id
        self.clock = clock
        self.graph_interval = graph_interval
        self.flush_interval = flush_interval
        self.source = source
        self.requested_theme = theme
        # the config file's [ui] theme, read cheaply before the config is parsed, so the
        # first frame is not painted in another theme; the parsed config has the last word
        self.first_theme = first_theme
        self.flag_service = flag_service
        self.load_flags = load_flags
        self.live_health = live_health
        self.check_unfinished = check_unfinished  # the CLI's crash warning, given here
        from ..keymap import keymap_for

        keys = keymap if keymap is not None else (config.ui.keys if config is not None else {})
        self.user_keymap = keymap_for(keys)  # a bad [ui.keys] fails here, before any screen
        self.health: Any = None  # tui.health.LiveHealth while the room samples the sources
        hosts = tuple(HostView(h.name) for h in config.hosts) if config is not None else ()
        loading = "loading configuration…" if self.config_loader is not None else ""
        self.state = RoomState(pinned=deployment_id, hosts=hosts, loading=loading)
        self.caught_up = asyncio.Event()
        self.engine_worker: Worker[Any] | None = None
        self.publisher: Any = None
        self.notifier: Any = None
        self._feed = feed
        self._armed: dict[str, float] = {}
        self._graphed: tuple[Any, ...] | None = None
        self._graph_timer: Any = None
        self.room = RoomScreen(
            watch=self.WATCH,
            target_ms=config.monitor.response_time_target_ms if config else 200.0,
            acceptable_ms=config.monitor.response_time_acceptable_ms if config else 500.0,
            max_log_lines=max_log_lines,
            source=source,
            error_rate_limit=config.monitor.error_rate_acceptable if config else 0.01,
        )
        self.bridge: Bridge | None = None
        self._theme_before_parse(theme or first_theme or DEFAULT_THEME)
        self.background_started = False  # set by _after_first_frame
        self._awaiting_history = False  # `ui`: the rest of the start-up waits for the history

    # -- set-up -------------------------------------------------------------------------

    @property
    def available_actions(self) -> tuple[Action, ...]:
        return available(self.WATCH)

    @property
    def engine(self) -> Any:
        """The :class:`backend.engine.Engine` this room drives (None: a watcher's room).

        ``portal-ops ui`` passes a factory: importing and building the engine (~40 ms of
        CPU) waits until the first frame is painted (:meth:`_after_first_frame`), or until
        an action needs it, whichever comes first."""
        if self._engine is None and self._engine_factory is not None:
            factory, self._engine_factory = self._engine_factory, None
            self._engine = factory()
            self.bus = self._engine.bus
        return self._engine

    @property
    def has_engine(self) -> bool:
        """Whether this room drives an engine, without building it."""
        return self._engine is not None or self._engine_factory is not None

    def get_default_screen(self) -> Screen[Any]:
        return self.room

    def get_css_variables(self) -> dict[str, str]:
        variables = derive_variables(super().get_css_variables())
        self.theme_variables = variables
        return variables

    def _theme_before_parse(self, name: str) -> None:
        """Choose the theme before the stylesheet is first parsed, without its watcher.

        Set in on_mount (Textual's way), the watcher made Textual reparse every rule and
        restyle every widget before the first frame. This is what the watcher does, minus
        that refresh; an unknown name is left to :meth:`_apply_theme` (it says so)."""
        for theme in THEMES:
            self.register_theme(theme)
        from ..stylesheets import ThemeStylesheet

        self.stylesheet = ThemeStylesheet(variables=self.get_css_variables())
        if name not in self.available_themes:
            return
        self.set_reactive(App.theme, name)
        dark = self.current_theme.dark
        classes = {c: False for c in self.classes if c.startswith("-theme-")}
        classes.update({f"-theme-{name}": True, "-dark-mode": dark, "-light-mode": not dark})
        self.update_classes(classes, update=False)
        self._refresh_truecolor_filter(self.ansi_theme)
        self.stylesheet.set_variables(self.get_css_variables())

    def on_mount(self) -> None:
        self._apply_theme(
            self.requested_theme or self.first_theme or DEFAULT_THEME
        )  # no-op if known
        if self.user_keymap:
            self.set_keymap(self.user_keymap)
        if self.config_loader is None:
            self._start_bridge()
        self.set_interval(1.0, self._tick)
        self._graph_timer = self.set_interval(self.graph_interval, self._redraw_graphs)
        self.call_after_refresh(self._after_first_frame)

    def _start_bridge(self) -> None:
        self.bridge = Bridge(
            self._make_feed(), self.post_message, self.state, flush_interval=self.flush_interval
        )
        self.run_worker(self.bridge.run(), name="feed", group="feed", exit_on_error=False)

    def _after_first_frame(self) -> None:
        """What the first frame does not need, started once it is painted: the config
        (``portal-ops ui`` passes a loader: the models' import and the parse are ~0.15 s of
        CPU), the engine (a factory), the flag listing (flags, Redis), the Redis
        publisher, live health (httpx, prometheus_client) and the notifier (Jinja2,
        Apprise). Started in on_mount, their imports and threads held the first frame back
        by ~0.25 s of CPU. Garbage collection, paused for the launch, resumes here."""
        if self.config_loader is not None:
            if self._load_config():  # the history first: the rest once it is shown
                self._awaiting_history = True
                self.run_worker(self._after_history(), name="after-history", group="feed")
            return
        self._start_background()

    async def _after_history(self) -> None:
        await self.caught_up.wait()
        self.call_after_refresh(self._start_background)  # once the history is painted

    def _start_background(self) -> None:
        if self.background_started:
            return
        if self.has_engine:
            self.engine  # noqa: B018  # built before anything emits on its bus (the journal)
        if self.load_flags and self.config is not None:
            self._refresh_flags()
            self.set_interval(FLAG_REFRESH_SECONDS, self._refresh_flags)
        self._start_publisher()
        self._load_notifier()
        self._start_live_health()
        if self.check_unfinished and self.config is not None:
            self.run_worker(
                self._warn_unfinished, thread=True, name="crash-warning", exit_on_error=False
            )
        if self.room.ready:
            self.call_later(self.room.query_one(HealthGraphs).mount_plots)
        self.background_started = True
        self.set_timer(PREPARE_THEME_AFTER, self._prepare_next_theme)
        from ..startup import release_gc

        release_gc()  # held since the launch (tui/startup.py)

    def _load_config(self) -> bool:
        """Parse the config the first frame did without, and set the room up with it. A bad
        one (tui.startup.StartupError, or a ValueError for a bad ``[ui.keys]``) closes the
        room with exit code 2; :func:`tui.app.run_control_room` raises it once the terminal
        is given back, so the command prints the same message as before the room opened."""
        loader, self.config_loader = self.config_loader, None
        assert loader is not None
        try:
            self._configure(loader())
        except Exception as exc:
            self.startup_error = exc
            self.exit(2, return_code=2)
            return False
        return True

    def _configure(self, config: Config) -> None:
        """What the constructor does with a config it is given, once it is loaded."""
        self.config = config
        if self._keymap_given is None:
            from ..keymap import keymap_for

            self.user_keymap = keymap_for(config.ui.keys)
            if self.user_keymap:
                self.set_keymap(self.user_keymap)
        self._wire(config)
        if self.requested_theme is None and config.ui.theme and config.ui.theme != self.theme:
            self._apply_theme(config.ui.theme)
        self.room.set_limits(
            config.monitor.response_time_target_ms,
            config.monitor.response_time_acceptable_ms,
            config.monitor.error_rate_acceptable,
        )
        hosts = tuple(HostView(h.name) for h in config.hosts)
        self.state = replace(self.state, hosts=hosts, loading="")
        self.room.show(self.state, self.clock(), force=True)
        self._start_bridge()
        self.refresh_bindings()

    def _wire(self, config: Config) -> None:
        """What a room builds from its config (an operator room: its journal and engine)."""

    def _warn_unfinished(self) -> None:
        """A thread: the crash warning `portal-ops deploy` prints (a deployment whose process
        died holds the lock; the hosts say where it stopped), as a toast. Read before the
        first frame, it held the room back until every host answered, and printed before
        the full screen, it stayed hidden until the room closed."""
        from ..commands.common import unfinished_warnings

        assert self.config is not None
        for line in unfinished_warnings(self.config, self.journal):
            with contextlib.suppress(RuntimeError):  # the room closed meanwhile
                self.call_from_thread(
                    self.notify, line.removeprefix("portal-ops: "), severity="warning", timeout=60
                )

    def _start_live_health(self) -> None:
        """Sample the portal's sources in this room, deployment or not (tui/health.py)."""
        if not self.live_health or self.config is None:
            return
        from ..health import LiveHealth

        hosts: dict[str, Any] = {}
        if self.has_engine and self.config.monitor.access_log.enabled:
            with contextlib.suppress(Exception):
                hosts = self.engine.make_hosts()
        health = LiveHealth(self.config, self._live_sample, hosts=hosts)
        if not health.has_sources:
            return
        self.health = health
        self.run_worker(health.start(), name="live-health", group="feed", exit_on_error=False)

    def _live_sample(self, event: Any) -> None:
        if self.bridge is not None:
            self.bridge.apply(lambda state: reduce(state, event))

    def _apply_theme(self, name: str) -> None:
        if name in self.available_themes:
            self.theme = name
        else:
            self.theme = DEFAULT_THEME
            known = ", ".join(CYCLE)
            self.notify(f"unknown theme {name!r}; using {DEFAULT_THEME} (try {known})")

    def _make_feed(self) -> Feed:
        if self._feed is not None:
            return self._feed
        if self.bus is not None:  # the engine's bus, built or not yet
            journal = self.journal
            history = partial(journal_history, journal) if journal is not None else ()
            return BusFeed(self.bus, history=history)
        if self.journal is None:
            raise RuntimeError("the control room needs an engine, a journal or a feed")
        return JournalFeed(self.journal, self.deployment_id)

    def _start_publisher(self) -> None:
        """A room that runs the engine copies its events to Redis for remote watchers."""
        if self.WATCH or not self.has_engine or self.config is None or not self.config.redis.url:
            return
        from backend.feed import RedisPublisher

        self.publisher = RedisPublisher(
            self.engine.bus, self.config.redis.url, stream=stream_key(self.config.redis.prefix)
        ).start()

    def _load_notifier(self) -> None:
        """Import the notifier (Jinja2, Apprise: ~0.3 s) in a thread, then attach it.

        Imported on the event loop it held back the first frame; a run started before the
        thread ends attaches it itself (``_start_run``), so no event goes unnotified."""
        if self.WATCH or not self.has_engine or self.config is None:
            return

        def load() -> None:
            import backend.notify.notifier  # noqa: F401  # the slow part, off the loop

            with contextlib.suppress(RuntimeError):  # the room closed meanwhile
                self.call_from_thread(self._start_notifier)

        self.run_worker(load, thread=True, name="notifier", group="notify", exit_on_error=False)

    def _start_notifier(self) -> None:
        """A room that runs the engine sends its notifications, like the CLI does."""
        if self.WATCH or not self.has_engine or self.config is None or self.notifier is not None:
            return
        from backend.notify import Notifier

        self.notifier = Notifier.from_config(self.config, self.engine.bus)
        self.notifier.attach(self.engine.bus)
        from backend.observe.metrics import attach_metrics

        attach_metrics(self.config, self.engine.bus)  # [metrics]: as the CLI's deploys do

    def exit(self, *args: Any, **kwargs: Any) -> None:
        """Close the room (q, a hang-up, ctrl+c): from here on nothing is to be resumed."""
        _nothing_to_resume()
        super().exit(*args, **kwargs)

    async def on_unmount(self) -> None:
        if self.health is not None:
            await self.health.stop()
        if self.publisher is not None:
            await self.publisher.stop()
        if self.notifier is not None:
            await self.notifier.aclose()

    # -- flags --------------------------------------------------------------------------

    def _service(self) -> Any:
        if self.flag_service is None and self.config is not None:
            try:
                from backend.flags.service import FlagService
            except ImportError:
                return None
            self.flag_service = FlagService.from_config(self.config)
        return self.flag_service

    def _has_service(self) -> bool:
        """Whether :meth:`_service` would give one, without building it: the footer asks on
        the first frame, and building it imports the flags and Redis (~0.1 s)."""
        if self.flag_service is not None:
            return True
        return self.config is not None and _redis_installed()

    def _refresh_flags(self) -> None:
        self.run_worker(
            self._read_flags, thread=True, group="flags", exclusive=True, exit_on_error=False
        )

    def _read_flags(self) -> None:
        """A thread: read the flag listing (SQLite, Redis counters) and hand it over."""
        service = self._service()
        if service is None:
            return
        listed_at = time.time()  # events up to now are in what is read next
        rows = [row.to_json() for row in service.list_flags()]
        emergency = service.emergency()
        reason = (emergency.reason or "kill switch") if emergency.active else ""
        self.call_from_thread(self._apply_flags, rows, reason, listed_at)

    def _apply_flags(self, rows: list[dict[str, Any]], emergency: str, listed_at: float) -> None:
        if self.bridge is not None:
            self.bridge.apply(lambda state: with_flags(state, rows, emergency, listed_at))
            self.bridge.flush()

    # -- drawing ------------------------------------------------------------------------

    def _drawing_screens(self) -> list[Any]:
        """The screens the clock, the feed and the graphs draw on: not one being torn down
        (the timers can still fire while the app exits and removes the panes; these are
        Textual's own teardown flags, which its widgets check the same way)."""
        return [
            s
            for s in self.screen_stack
            if getattr(s, "DRAWS_STATE", False)
            and not (getattr(s, "_closing", False) or getattr(s, "_pruning", False))
            and not getattr(self, "_closing", False)
        ]

    def on_room_changed(self, message: RoomChanged) -> None:
        old, self.state = self.state, message.state
        now = self.clock()
        with self.batch_update():
            for screen in self._drawing_screens():
                screen.show(self.state, now)
        if old.status != self.state.status or old.deployment is not self.state.deployment:
            self.refresh_bindings()  # what the footer dims depends on these only

    def on_log_lines(self, message: LogLines) -> None:
        if self.room in self._drawing_screens():  # a late line while the room is torn down
            self.room.append_log(message.lines)  # has no pane left to go to

    def on_feed_caught_up(self, message: FeedCaughtUp) -> None:
        if not self.room.ready:  # the history beat the first paint: wait for the panes
            self.set_timer(0.05, partial(self.on_feed_caught_up, message))
            return
        self._redraw_graphs()
        self.caught_up.set()

    def on_feed_failed(self, message: FeedFailed) -> None:
        self.notify(f"the event feed stopped: {message.error}", severity="error", timeout=30)
        if self._awaiting_history:  # no history is coming: start what waited for it
            self._start_background()

    def _tick(self) -> None:
        now = self.clock()
        for screen in self._drawing_screens():
            screen.tick(now)
        if self.room.ready:
            for graphs in self.room.query(HealthGraphs):  # none while the room is torn down
                graphs.tick(now)

    def _redraw_graphs(self) -> None:
        """On the graph timer: redraw only when samples arrived since the last drawing."""
        health = self.state.health
        if health is self._graphed or not self.room.ready:
            return
        self._graphed = health
        state = self.state
        for graphs in self.room.query(HealthGraphs):  # none while the room is torn down
            graphs.plot(health, self.clock(), state.marks, live=state.health_live)

    def refresh_css(self, animate: bool = True) -> None:
        """Textual's (a new theme: every rule re-applied, the screen repainted), with the
        panes' own theme-coloured content (table cells styled from component classes, graph
        lines) redrawn between the restyle and the repaint, so one repaint shows it all.
        Redrawn after it (on the theme signal), tables and graphs were painted twice per
        `t`. The steps are Textual 8's ``App.refresh_css``."""
        if not self.room.ready:
            super().refresh_css(animate)
            return
        stylesheet = self.stylesheet
        stylesheet.set_variables(self.get_css_variables())
        stylesheet.reparse()
        stylesheet.update(self, animate=animate)
        for screen in self.screen_stack:
            if screen is not self.screen:
                stylesheet.update(screen, animate=animate)
                screen._css_update_count = self._css_update_count
        for screen in self._drawing_screens():  # their component styles are the new ones now
            screen.restyle()
        self._graphed = None
        self._redraw_graphs()
        with contextlib.suppress(ScreenError):
            if self.screen.is_mounted:
                self.screen._refresh_layout(self.size)
                self.screen._css_update_count = self._css_update_count
        self.call_after_refresh(self._prepare_next_theme)  # once this theme is painted

    def _prepare_next_theme(self) -> None:
        """Parse the rules of the theme `t` goes to next, while the room is idle: the parse
        was ~15 % of what `t` cost, and the first round of themes always paid it."""
        from ..stylesheets import ThemeStylesheet

        stylesheet = self.stylesheet
        names = [n for n in CYCLE if n in self.available_themes]
        if not isinstance(stylesheet, ThemeStylesheet) or not names:
            return
        index = names.index(self.theme) if self.theme in names else -1
        theme = self.get_theme(names[(index + 1) % len(names)])
        if theme is None:
            return
        # what get_css_variables returns once that theme is the current one
        variables = {**theme.to_color_system().generate(), **theme.variables}
        stylesheet.prepare(derive_variables({**self.get_theme_variable_defaults(), **variables}))

    async def wait_caught_up(self, timeout: float = 10.0) -> None:
        """For tests and scripts: the history is shown and the feed is live."""
        await asyncio.wait_for(self.caught_up.wait(), timeout)

    def unsettled(self) -> str | None:
        """What could still change the screen without new input, or None once settled.

        Snapshot tests, screenshots and benches wait on this instead of a pause or a guess
        from CPU time: a loaded machine makes a busy process look idle, and a picture taken
        then shows tables that have not yet recomputed their column widths."""
        if not self.caught_up.is_set():
            return "the feed has not caught up"
        if not self.background_started:
            return "the work after the first frame has not started"
        bridge = self.bridge
        if bridge is not None and not bridge.flushed:
            return "the newest state is not posted yet"
        if self.room.ready and (self.room.drawn is not self.state or bridge is None):
            return "the newest state is not drawn yet"
        if self.room.ready and self.state.health is not self._graphed:
            return "the graphs are not drawn yet"
        found = self.room.query(HealthGraphs) if self.room.ready else None
        graphs = found.first() if found else None  # none while the room is torn down
        if graphs is not None and not graphs.plots_ready:
            return "the graphs are not mounted yet"
        if (
            graphs is not None
            and graphs.region.area > 0  # a zoomed pane hides them
            and graphs.drawn_for != graphs.fitted_sizes()
        ):
            return "the graphs were drawn for another size"
        busy = [w.name for w in self.workers if w.is_running and w.group != "feed"]
        if busy:
            return f"worker(s) running: {', '.join(busy)}"
        if self.message_queue_size:
            return "the app has messages queued"
        for screen in self.screen_stack:
            for node in screen.walk_children(with_self=True):
                if isinstance(node, DataTable) and (
                    node._require_update_dimensions or node._new_rows or node._updated_cells
                ):
                    return f"table {node.id or node!r} has not laid out its new cells"
                if node.message_queue_size:
                    return f"{node!r} has messages queued"
                if (
                    screen is self.screen  # screens underneath repaint when uncovered
                    and isinstance(node, Widget)
                    and (node._layout_required or node._repaint_required)
                ):
                    return f"{node!r} waits for layout or repaint"
        return None

    # -- guards -------------------------------------------------------------------------

    @property
    def engine_running(self) -> bool:
        return self.engine_worker is not None and self.engine_worker.is_running

    def unavailable(self, name: str) -> str | None:
        """Why an action cannot run right now (None: it can). Shown in help and toasts."""
        if self.WATCH and name in DANGEROUS_NAMES:
            return "read-only watch mode"
        if self.state.loading and name in DANGEROUS_NAMES:
            return "the configuration is still loading"
        if name in ("deploy", "rollback", "pause_rollout") and not self.has_engine:
            return "no engine in this room"
        if name == "deploy" and (self.engine_running or self.state.running):
            return "a deployment or rollback is running"
        if name == "rollback" and self._rollback_target() is None:
            return "no deployment to roll back"
        worker = self.engine_worker
        if name == "rollback" and worker and worker.is_running and worker.name == "rollback":
            return "a rollback is already running"
        if name == "pause_rollout" and not (
            self.engine_running and worker is not None and worker.name == "deploy"
        ):
            return "no deployment of this room is running (phase 8 is where it acts)"
        if name in ("emergency_disable", "flag_step") and not self._has_service():
            return "no flag service configured"
        return None

    def unavailable_action(self, action: Action) -> str | None:
        return self.unavailable(action.name)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in DANGEROUS_NAMES:
            if self.WATCH:
                return False  # absent from the footer, and refused if reached at all
            return None if self.unavailable(action) else True
        return action not in ROOM_ONLY or isinstance(self.screen, RoomScreen)

    async def run_action(
        self,
        action: Any,
        default_namespace: Any = None,
        namespaces: Any = None,
    ) -> bool:
        """As Textual's, but a refused dangerous action says why (a dimmed key, a palette hit)."""
        handled = await super().run_action(action, default_namespace, namespaces)
        if not handled and isinstance(action, str):
            name = action.removeprefix("app.").split("(", 1)[0]
            why = self.unavailable(name) if name in DANGEROUS_NAMES else None
            if why and not self.WATCH:
                self.notify(f"{name.replace('_', ' ')}: {why}", severity="warning", timeout=4)
        return handled

    def _allowed(self, name: str) -> bool:
        why = self.unavailable(name)
        if why:
            self.notify(f"{name.replace('_', ' ')}: {why}", severity="warning")
            return False
        return True

    def _arm(self, key: str, message: str) -> bool:
        """True on the second press within ARM_SECONDS; the first press says what comes."""
        now = time.monotonic()
        if now - self._armed.pop(key, -1e9) <= ARM_SECONDS:
            return True
        self._armed[key] = now
        self.notify(message, timeout=ARM_SECONDS)
        return False

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title == "Quit":  # ours asks first while a run is going
                yield SystemCommand("Quit", "Quit portal-ops", self.action_quit)
            else:
                yield command

    # -- looking (both modes) -----------------------------------------------------------

    def action_focus_pane(self, pane: str) -> None:
        self.room.focus_pane(pane)

    def action_zoom(self) -> None:
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
            return
        widget: Widget | None = screen.focused
        while widget is not None and not widget.has_class("pane"):
            parent = widget.parent
            widget = parent if isinstance(parent, Widget) else None
        if widget is None:
            self.notify("focus a pane first (1-5 or tab), then z")
            return
        screen.maximize(widget, container=False)

    def action_show_flags(self) -> None:
        from ..screens.flags import FlagsScreen

        if isinstance(self.screen, FlagsScreen):
            self.pop_screen()
            return
        if not self.is_screen_installed("flags"):  # built once, kept when closed: `f` again
            self.install_screen(FlagsScreen(watch=self.WATCH), name="flags")  # only shows it
        self.push_screen("flags")
        self.call_after_refresh(self._draw_flags_screen)

    def _draw_flags_screen(self) -> None:
        from ..screens.flags import FlagsScreen

        if isinstance(self.screen, FlagsScreen):
            self.screen.redraw(self.state, self.clock())

    def action_filter_log(self) -> None:
        self.room.open_filter()

    def action_cycle_severity(self) -> None:
        level = self.room.cycle_severity()
        self.notify(f"log: {level.upper() if level != 'debug' else 'all lines'}", timeout=2)

    def action_wrap_log(self) -> None:
        wrapped = self.room.toggle_wrap()
        self.notify(
            "log: long lines wrapped" if wrapped else "log: lines cut at the edge", timeout=2
        )

    def action_follow_log(self) -> None:
        self.room.log_widget.follow()

    def action_graph_rate(self, factor: float) -> None:
        self.graph_interval = min(10.0, max(0.25, self.graph_interval * factor))
        if self._graph_timer is not None:
            self._graph_timer.stop()
        self._graph_timer = self.set_interval(self.graph_interval, self._redraw_graphs)
        self.notify(f"graphs redrawn every {self.graph_interval:g} s", timeout=2)

    def action_cycle_theme(self) -> None:
        names = [n for n in CYCLE if n in self.available_themes]
        index = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(index + 1) % len(names)]
        # the toast one frame later: the key's first frame is the new theme alone
        self.call_after_refresh(self.notify, f"theme: {self.theme}", timeout=2)

    def action_help(self) -> None:
        from ..screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(
            HelpScreen(
                self.available_actions, watch=self.WATCH, unavailable=self.unavailable_action
            )
        )

    async def action_quit(self) -> None:
        if self.WATCH or not self.engine_running:
            self.exit(0)
            return
        assert self.engine_worker is not None
        from ..screens.confirm import ConfirmQuit

        what = "rollback" if self.engine_worker.name == "rollback" else "deployment"
        dep = self.state.deployment
        self.push_screen(ConfirmQuit(dep.id if dep else "(starting)", what), self._quit_confirmed)

    def _quit_confirmed(self, ok: object) -> None:
        if ok:
            self.run_worker(self._cancel_and_exit(), name="quit", group="control")

    async def _cancel_and_exit(self) -> None:
        worker = self.engine_worker
        if worker is not None and worker.is_running:
            worker.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.wait(), 15)
        self.exit(1, return_code=1)

    # -- the engine's results -------------------------------------------------------------

    def on_run_finished(self, message: RunFinished) -> None:
        if message.error and message.outcome == "error":
            self.notify(f"{message.run} did not run: {message.error}", severity="error", timeout=20)
        else:
            good = message.outcome in ("succeeded", "rolled_back")
            self.notify(
                f"{message.run} {message.deployment_id}: {message.outcome}"
                + (f" ({message.error})" if message.error else ""),
                severity="information" if good else "error",
                timeout=15,
            )
        self.refresh_bindings()

    def _rollback_target(self) -> str | None:
        dep = self.state.deployment
        if dep is not None and dep.id and not dep.dry_run:
            return dep.id
        return None


def _nothing_to_resume() -> None:
    """The room is closing (asked first, before Textual stops its driver): a SIGCONT from
    now on (a terminal that hangs up sends SIGHUP, then SIGCONT) must not reach Textual's
    handler, which resumed its driver after the room had closed and started a
    terminal-input thread that nothing stops: the process never exited, and on a dead
    terminal that thread spun at 100 % of a core."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCONT, signal.SIG_DFL)
