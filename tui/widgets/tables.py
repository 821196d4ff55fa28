"""The hosts and flags tables: DataTables updated cell by cell, never rebuilt per tick.

Cell colours come from component classes styled in the theme's .tcss (no colour in
code); the words in the cells ("failed", "off", "partial") carry the meaning by
themselves, so the tables read the same without colour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Unpack

from rich.text import Text
from textual.widgets import DataTable

from ..state import FlagView, HostView
from . import _format as fmt
from ._options import WidgetOptions

HOST_STALE_SECONDS = 60.0  # a host figure older than this is shown as "stale", not as current
_BAD_STATES = {"failed", "unhealthy", "error", "down"}
_GOOD_STATES = {"healthy", "live", "switched", "ok", "up", "ready", "done", "rolled_back"}


class _Table(DataTable[Text]):
    """A DataTable keyed by row name whose cells are updated in place when they change."""

    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = ()  # (key, label)
    ALLOW_MAXIMIZE = True

    def __init__(self, **kwargs: Unpack[WidgetOptions]) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._rows: dict[str, tuple[Text, ...]] = {}
        self._column_specs = self.COLUMNS  # this table's (key, label) pairs, in order

    def on_mount(self) -> None:
        for key, label in self._column_specs:
            self.add_column(label, key=key)
        self.show_cursor = self.has_focus

    def on_focus(self) -> None:
        self.show_cursor = True

    def on_blur(self) -> None:
        self.show_cursor = False

    def style_for(self, component: str) -> str:
        return str(self.get_component_rich_style(component, partial=True))

    def set_rows(self, rows: Sequence[tuple[str, tuple[Text, ...]]]) -> None:
        """Show exactly these rows: cells that did not change are not touched."""
        names = [name for name, _ in rows]
        if names != list(self._rows):
            cursor = self.cursor_row
            self.clear()
            self._rows = {}
            for name, cells in rows:
                self.add_row(*cells, key=name)
                self._rows[name] = cells
            if rows:
                self.move_cursor(row=min(cursor, len(rows) - 1), animate=False)
            self._fit_columns()
            return
        for name, cells in rows:
            old = self._rows.get(name, ())
            for (key, _), new, before in zip(self._column_specs, cells, old, strict=False):
                if new != before:
                    wider = new.cell_len > (before.cell_len if before is not None else 0)
                    self.update_cell(name, key, new, update_width=wider)
            self._rows[name] = cells
        self._fit_columns()

    def _fit_columns(self) -> None:
        """Size every column to its widest cell now, not when the table next idles.

        DataTable measures new rows on its Idle message; a frame drawn before that (a busy
        machine, a screenshot) showed ``comp`` for ``company-dashboard``. The widths are
        known here, so they are set here; Textual's own measurement later agrees. They fit
        the rows shown now, not every value a cell once held: a picture depends on the state
        it shows, not on which intermediate states happened to be drawn before it."""
        widened = False
        for index, column in enumerate(self.columns.values()):
            widest = max((cells[index].cell_len for cells in self._rows.values()), default=0)
            needed = max(column.label.cell_len, widest)
            if column.auto_width and column.content_width != needed:
                column.content_width = needed
                widened = True
        if widened:
            self.notify_style_update()  # drops the lines rendered at the old widths

    @property
    def selected(self) -> str | None:
        """The row name under the cursor, if any."""
        if not self._rows or self.cursor_row < 0:
            return None
        names = list(self._rows)
        return names[self.cursor_row] if self.cursor_row < len(names) else None


class HostTable(_Table):
    COLUMNS = (  # most telling first: a narrow pane cuts the last columns
        ("host", "Host"),
        ("state", "State"),
        ("release", "Release"),
        ("p95", "p95"),
        ("err", "Errors"),
        ("step", "Step"),
    )
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "hosts--good",
        "hosts--bad",
        "hosts--busy",
        "hosts--muted",
    }

    def show(self, hosts: Sequence[HostView], now: float = 0.0) -> None:
        sampled = [h.sampled_at for h in hosts if h.sampled_at is not None]
        age = f" · sampled {fmt.age(max(0.0, now - max(sampled)))}" if sampled and now else ""
        fmt.titles(self, "[2] Hosts", f"{len(hosts)}{age}")
        self.set_rows([(h.name, self._cells(h, now)) for h in hosts])

    def _cells(self, host: HostView, now: float = 0.0) -> tuple[Text, ...]:
        state = host.state
        if state in _BAD_STATES:
            comp = "hosts--bad"
        elif state in _GOOD_STATES:
            comp = "hosts--good"
        elif state == "pending":
            comp = "hosts--muted"
        else:
            comp = "hosts--busy"
        step = host.step + (" ✗" if host.step_failed else "")
        stale = host.sampled_at is not None and now and now - host.sampled_at > HOST_STALE_SECONDS
        p95 = "stale" if stale else fmt.ms(host.p95)
        err = "stale" if stale else fmt.percent(host.error_rate)
        return (
            Text(host.name),
            Text(state, style=self.style_for(comp)),
            Text(host.release or "-"),
            Text(p95, justify="right"),
            Text(err, justify="right"),
            Text(step or "-", style=self.style_for("hosts--bad") if host.step_failed else ""),
        )


class FlagTable(_Table):
    COLUMNS = (
        ("flag", "Flag"),
        ("state", "State"),
        ("pct", "%"),
        ("rules", "Rules"),  # the strategies in a few words (backend.flags.describe.summary)
        ("over", "Overrides"),
        ("evals", "Evals"),
    )
    DETAIL_COLUMNS = (("by", "Changed by"), ("reason", "Reason"), ("desc", "Description"))
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "flags--on",
        "flags--off",
        "flags--partial",
        "flags--killed",
    }

    def __init__(self, *, detailed: bool = False, **kwargs: Unpack[WidgetOptions]) -> None:
        super().__init__(**kwargs)
        self.detailed = detailed
        if detailed:
            self._column_specs = self.COLUMNS + self.DETAIL_COLUMNS

    def show(self, flags: Sequence[FlagView], emergency: bool = False) -> None:
        on = 0 if emergency else sum(1 for f in flags if f.enabled)
        title = "[4] Flags" + (" · KILL SWITCH ON" if emergency else "")
        fmt.titles(self, title, f"{on} on / {len(flags)}")
        self.set_rows([(f.name, self._cells(f, emergency)) for f in flags])

    def _cells(self, flag: FlagView, emergency: bool) -> tuple[Text, ...]:
        state = flag.state(emergency)
        cells: tuple[Text, ...] = (
            Text(flag.name),
            Text(state, style=self.style_for(f"flags--{state}")),
            Text(f"{flag.percentage}%" if flag.enabled and not emergency else "-", justify="right"),
            Text(flag.rules or "-"),
            Text(str(flag.overrides) if flag.overrides else "-", justify="right"),
            Text("-" if flag.evaluations is None else f"{flag.evaluations:,}", justify="right"),
        )
        if self.detailed:
            cells += (
                Text(flag.changed_by or "-"),
                Text(flag.reason or "-"),
                Text(flag.description or ""),
            )
        return cells
