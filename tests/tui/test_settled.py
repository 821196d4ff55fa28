"""The room says when it has settled, for a reason a test can name.

Snapshots used to be taken once Textual's ``wait_for_idle`` guessed the process was idle
from its CPU time. On a loaded machine the process gets little CPU, looks idle, and the
picture was taken before the tables had recomputed their column widths (``comp`` instead
of ``company-dashboard``). These tests run with that guess switched off (see the autouse
fixture in conftest.py), so they hold only because the room names what is pending.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from textual.widgets import DataTable

from tui.settle import settled
from tui.widgets.graphs import HealthGraphs
from tui.widgets.tables import FlagTable

LONG = "a-flag-name-much-longer-than-any-recorded-one"


def _widest(table: DataTable[Any], column: int) -> int:
    return max(table.get_row_at(i)[column].cell_len for i in range(table.row_count))


async def test_settled_waits_for_the_tables_to_lay_out(room: Any) -> None:
    app = room("done")
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        assert app.unsettled() is None
        flags = list(app.state.flags)
        renamed = (replace(flags[0], name=LONG), *flags[1:])
        assert app.bridge is not None
        app.bridge.apply(lambda state: replace(state, flags=renamed))
        app.bridge.flush()
        assert app.unsettled() is not None  # posted, not drawn yet: the room says so
        await settled(pilot)
        table = app.room.query_one(FlagTable)
        assert table.get_row_at(0)[0].plain == LONG
        assert table.columns[next(iter(table.columns))].get_render_width(table) >= len(LONG)
        assert _widest(table, 0) == len(LONG)


async def test_unsettled_names_what_is_pending(room: Any) -> None:
    app = room("mid")
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        assert app.unsettled() is None
        app.room.query_one(FlagTable).add_row(*(["x"] * 5), key="pending-row")
        reason = app.unsettled()
        assert reason is not None and "table" in reason
        await settled(pilot)
        assert app.unsettled() is None


async def test_graph_text_is_refitted_when_the_size_changes(room: Any) -> None:
    """At 80x24 the health strip's sparkline was fitted to the size the pane had when the
    samples were drawn; a later layout left it (and the graph titles) at the old width."""
    app = room("mid")
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        graphs = app.room.query_one(HealthGraphs)
        for size in ((120, 36), (80, 24), (200, 50)):
            await pilot.resize_terminal(*size)
            await settled(pilot)
            assert graphs.drawn_for == graphs.fitted_sizes()
            shown = str(graphs.query_one("#health-strip").render())
            assert _bars(shown) == _bars(str(graphs.strip(graphs.samples)))  # fitted to now
            assert _bars(shown) > 8 or graphs.size.width < 60


def _bars(text: str) -> int:
    """The length of the longest sparkline run in a line of text."""
    runs = "".join(c if c in "▁▂▃▄▅▆▇█" else " " for c in text).split()
    return max((len(run) for run in runs), default=0)
