"""The flags screen: every flag with who changed it last and why; the same flag keys work."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Static

from ..state import RoomState
from ..widgets import _format as fmt
from ..widgets.footer import KeyFooter
from ..widgets.header import DeployHeader
from ..widgets.tables import FlagTable


class FlagsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f", "app.pop_screen", "Back"),
    ]
    AUTO_FOCUS = "#all-flags"
    DRAWS_STATE: ClassVar[bool] = True  # the app's clock and feed draw on it

    def __init__(self, *, watch: bool = False) -> None:
        super().__init__(id="flags-screen")
        self.watch_mode = watch
        self.drawn: RoomState | None = None
        self._drawn_theme: str | None = None  # the theme its cells were styled from

    def compose(self) -> ComposeResult:
        yield DeployHeader(id="flags-header", watch=self.watch_mode)
        yield FlagTable(id="all-flags", classes="pane", detailed=True)
        yield Static(id="flag-detail")
        yield KeyFooter(compact=True, show_command_palette=False)

    def show(self, state: RoomState, now: float, *, force: bool = False) -> None:
        self.query_one(DeployHeader).show(state, now)
        table = self.query_one(FlagTable)
        if (
            force
            or self.drawn is None
            or self.drawn.flags is not state.flags
            or self.drawn.emergency != state.emergency
        ):
            table.show(state.flags, emergency=bool(state.emergency))
            table.border_title = "Flags"
        self.drawn = state
        self._detail()

    def tick(self, now: float) -> None:
        if self.drawn is not None:
            self.query_one(DeployHeader).show(self.drawn, now)

    def redraw(self, state: RoomState, now: float) -> None:
        """Everything again: the state and the theme may have changed while it was hidden
        (the room keeps this screen when it is closed)."""
        if self._drawn_theme != self.app.theme:  # cells styled from another theme
            self.query_one(FlagTable)._rows = {}
            self._drawn_theme = self.app.theme
        self.show(state, now, force=True)

    def restyle(self) -> None:
        self.query_one(FlagTable)._rows = {}
        if self.drawn is not None:  # at the app's time: ages stay right
            clock = getattr(self.app, "clock", None)
            self.show(self.drawn, clock() if clock else 0.0, force=True)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

    def _detail(self) -> None:
        state = self.drawn
        detail = self.query_one("#flag-detail", Static)
        if state is None:
            return
        name = self.query_one(FlagTable).selected
        flag = next((f for f in state.flags if f.name == name), None)
        lines: list[Content] = []
        if state.emergency:
            lines.append(
                Content.styled(
                    f"KILL SWITCH ON: every flag is off ({state.emergency})", "bold $error"
                )
            )
        if flag is None:
            lines.append(Content.styled("no flags yet", "$foreground-muted"))
        else:
            lines.append(Content.assemble((flag.name, "bold"), "  ", flag.description))
            if flag.rules:
                lines.append(Content.assemble(("rules ", "$foreground-muted"), flag.rules))
            if flag.changed_at:
                lines.append(
                    Content.assemble(
                        ("last change ", "$foreground-muted"),
                        f"{flag.change} at {fmt.clock(flag.changed_at)} by {flag.changed_by or '?'}",
                        ("  reason ", "$foreground-muted"),
                        flag.reason or "-",
                    )
                )
        detail.update(Content("\n").join(lines))
