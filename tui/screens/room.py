"""The control room: every pane on one screen, reflowing at small sizes.

Breakpoints add ``-narrow``/``-wide`` and ``-short``/``-tall`` classes to the screen; the
stylesheet (themes/control_room.tcss) stacks or collapses panes with them, so 80x24
keeps the phases, the hosts, a response-time graph, the log and a one-line health strip.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.screen import Screen
from textual.widgets import Input

from ..state import LogLine, RoomState
from ..widgets import _format as fmt
from ..widgets.footer import KeyFooter
from ..widgets.graphs import HealthGraphs
from ..widgets.header import DeployHeader
from ..widgets.hoststrip import HostStrip
from ..widgets.incident_log import LEVELS, IncidentLog
from ..widgets.tables import FlagTable, HostTable
from ..widgets.timeline import PhaseTimeline

PANES: dict[str, str] = {
    "timeline": "#timeline",
    "hosts": "#hosts",
    "graphs": "#graphs",
    "flags": "#flags",
    "log": "#log",
}


class RoomScreen(Screen[None]):
    """Draws a :class:`RoomState`; holds no state of its own beyond what it last drew."""

    # textual declares these `ClassVar[...] | None`, which mypy reads as instance variables
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [  # type: ignore[misc]
        (0, "-narrow"),
        (110, "-wide"),
    ]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-short"), (32, "-tall")]  # type: ignore[misc]
    AUTO_FOCUS = "#log"
    DRAWS_STATE: ClassVar[bool] = True  # the app's clock, feed and graphs draw on it

    def __init__(
        self,
        *,
        watch: bool = False,
        target_ms: float = 200.0,
        acceptable_ms: float = 500.0,
        max_log_lines: int = 10_000,
        source: str = "",
        error_rate_limit: float = 0.01,
    ) -> None:
        super().__init__(id="room")
        self.error_rate_limit = error_rate_limit
        self.source = source
        self.watch_mode = watch
        self.target_ms = target_ms
        self.acceptable_ms = acceptable_ms
        self.max_log_lines = max_log_lines
        self.drawn: RoomState | None = None
        self.ready = False  # set once the panes exist (on_mount), before is_mounted is

    def compose(self) -> ComposeResult:
        yield DeployHeader(
            id="header",
            watch=self.watch_mode,
            source=self.source,
            p95_limit_ms=self.target_ms,
            error_rate_limit=self.error_rate_limit,
        )
        yield HostStrip(id="host-strip")
        with Grid(id="body"):
            yield PhaseTimeline(id="timeline", classes="pane")
            yield HealthGraphs(
                id="graphs",
                classes="pane",
                target_ms=self.target_ms,
                acceptable_ms=self.acceptable_ms,
            )
            yield HostTable(id="hosts", classes="pane")
            yield FlagTable(id="flags", classes="pane")
            with Vertical(id="logpane"):
                yield IncidentLog(id="log", classes="pane", max_lines=self.max_log_lines)
                yield Input(
                    id="log-filter", placeholder="filter the log (enter keeps, escape clears)"
                )
        yield KeyFooter(id="footer", compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.ready = True
        app = self.app
        state = getattr(app, "state", None) or RoomState()
        clock = getattr(app, "clock", None)
        self.show(state, now=clock() if clock else 0.0, force=True)
        self._log_title()

    def set_source(self, source: str) -> None:
        """Where a watcher's events come from, known once its config is loaded."""
        self.source = source
        if self.ready:
            self.query_one(DeployHeader).source = source

    def set_limits(self, target_ms: float, acceptable_ms: float, error_rate_limit: float) -> None:
        """The config's limits, known after the first frame (``portal-ops ui`` parses it
        then): the header's breach marks and the graphs' lines."""
        self.target_ms, self.acceptable_ms = target_ms, acceptable_ms
        self.error_rate_limit = error_rate_limit
        if not self.ready:
            return
        header = self.query_one(DeployHeader)
        header.p95_limit_ms, header.error_rate_limit = target_ms, error_rate_limit
        graphs = self.query_one(HealthGraphs)
        graphs.target_ms, graphs.acceptable_ms = target_ms, acceptable_ms
        graphs.drawn_for = None

    # -- drawing ----------------------------------------------------------------------

    def show(self, state: RoomState, now: float, *, force: bool = False) -> None:
        """Update the panes whose slice of the state changed (identity tells)."""
        if not self.ready:
            return
        old = self.drawn
        self.query_one(DeployHeader).show(state, now)
        self.query_one(HostStrip).show(state)
        if force or old is None or old.timeline is not state.timeline or state.running:
            self.query_one(PhaseTimeline).show(state, now)
        if force or old is None or old.hosts is not state.hosts:
            self.query_one(HostTable).show(state.hosts, now)
        if force or old is None or old.flags is not state.flags or old.emergency != state.emergency:
            self.query_one(FlagTable).show(state.flags, emergency=bool(state.emergency))
        if state.loading:  # no count of hosts or flags before the config names them
            for pane in (self.query_one(HostTable), self.query_one(FlagTable)):
                fmt.titles(pane, subtitle="loading configuration…")
        self.drawn = state

    def tick(self, now: float) -> None:
        """The clock moved: refresh what shows elapsed time, nothing else."""
        if self.drawn is not None:
            self.query_one(DeployHeader).show(self.drawn, now)
            self.query_one(HostTable).show(self.drawn.hosts, now)
            if self.drawn.running:
                self.query_one(PhaseTimeline).show(self.drawn, now)

    def restyle(self) -> None:
        """The theme changed: cells styled from the old theme are redrawn."""
        for table in self.query(HostTable).results(), self.query(FlagTable).results():
            for widget in table:
                widget._rows = {}
        if self.drawn is not None:  # at the app's time: elapsed and ages stay right
            clock = getattr(self.app, "clock", None)
            self.show(self.drawn, now=clock() if clock else 0.0, force=True)

    # -- the log ----------------------------------------------------------------------

    @property
    def log_widget(self) -> IncidentLog:
        return self.query_one("#log", IncidentLog)

    def _log_title(self) -> None:
        log = self.log_widget
        title = "[5] Incident log"
        parts = []
        if log.filter_text:
            parts.append(f"/{log.filter_text}")
        if log.min_severity != "debug":
            parts.append(f"≥{log.min_severity.upper()}")
        if log.wrap:
            parts.append("wrapped")
        if log.filtered and not log.shown:
            shown = f"0 lines match (of {log.total})"
        else:
            shown = (f"{log.shown}/{log.total}" if log.filtered else f"{log.total}") + " lines"
        fmt.titles(log, title, " · ".join([*parts, shown]))

    def toggle_wrap(self) -> bool:
        log = self.log_widget
        log.set_wrap(not log.wrap)
        self._log_title()
        return log.wrap

    def on_data_table_row_selected(self, event: HostTable.RowSelected) -> None:
        """Enter on a host: its steps and their output, its release and health."""
        if not isinstance(event.data_table, HostTable) or self.drawn is None:
            return
        name = event.row_key.value
        host = next((h for h in self.drawn.hosts if h.name == name), None)
        if host is None:
            return
        from .host import HostDetail

        lines = [line for _, line in self.log_widget._lines if line.source == name]
        clock = getattr(self.app, "clock", None)
        self.app.push_screen(HostDetail(host, lines, clock() if clock else 0.0))

    def on_incident_log_detail(self, message: IncidentLog.Detail) -> None:
        from .detail import LogDetail

        self.app.push_screen(LogDetail(message.line))

    def append_log(self, lines: tuple[LogLine, ...]) -> None:
        self.log_widget.append(lines)
        self._log_title()

    def open_filter(self) -> None:
        box = self.query_one("#log-filter", Input)
        box.add_class("-open")
        box.value = self.log_widget.filter_text
        box.focus()

    def cycle_severity(self) -> str:
        log = self.log_widget
        level = (
            LEVELS[(LEVELS.index(log.min_severity) + 1) % len(LEVELS)]
            if log.min_severity in LEVELS
            else "debug"
        )
        log.set_filter(min_severity=level)
        self._log_title()
        return level

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "log-filter":
            self.log_widget.set_filter(text=event.value)
            self._log_title()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "log-filter":
            self.close_filter(keep=True)

    def close_filter(self, *, keep: bool) -> None:
        box = self.query_one("#log-filter", Input)
        if not keep:
            box.value = ""
            self.log_widget.set_filter(text="")
        box.remove_class("-open")
        self.log_widget.focus()
        self._log_title()

    def on_key(self, event: events.Key) -> None:
        box = self.query_one("#log-filter", Input)
        if event.key != "escape":
            return
        log = self.log_widget
        if box.has_focus or (log.has_focus and log.filtered):  # a kept filter clears too
            event.stop()
            event.prevent_default()
            if log.min_severity != "debug":
                log.set_filter(min_severity="debug")
            self.close_filter(keep=False)

    def focus_pane(self, pane: str) -> None:
        selector = PANES.get(pane)
        if selector:
            widget = self.query_one(selector)
            if widget.display:
                widget.focus()
            else:
                self.app.notify(f"the {pane} pane is hidden at this size: press z to zoom it")
                widget.focus()
                self.maximize(widget, container=False)
