"""Each flag's rules (its strategies in words) are in the flag table, readable at 80x24."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.tui import recorded
from tui.app import RoomApp
from tui.screens.flags import FlagsScreen
from tui.settle import settled
from tui.widgets.tables import FlagTable

Room = Callable[..., RoomApp]


def _screen_text(app: RoomApp) -> list[str]:
    """The lines on the terminal, as the operator reads them."""
    return [
        "".join(segment.text for segment in strip)
        for strip in app.screen._compositor.render_strips()
    ]


async def test_the_zoomed_flag_pane_shows_every_flags_rules_whole_at_80x24(room: Room) -> None:
    app = room("done")
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        await pilot.press("4")  # hidden at this size: 4 zooms it
        await settled(pilot)
        screen = _screen_text(app)
        for name in recorded.FLAGS:
            rules = recorded.RULES.get(name, "100% by company")
            row = next((line for line in screen if name in line), "")
            assert rules in row, f"{name}: {rules!r} not whole on screen:\n" + "\n".join(screen)
        assert any("Rules" in line for line in screen)


async def test_the_flags_screen_says_the_highlighted_flags_rules(room: Room) -> None:
    app = room("done")
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        await pilot.press("f")
        await settled(pilot)
        assert isinstance(app.screen, FlagsScreen)
        table: Any = app.screen.query_one(FlagTable)
        table.move_cursor(row=2)
        await settled(pilot)
        assert any("rules 2 strategies, 3 rules" in line for line in _screen_text(app))
