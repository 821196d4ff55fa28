"""SVG snapshots of the control room's main states (pytest-textual-snapshot).

Deterministic: recorded events (tests/tui/recorded.py) in a real journal, a clock fixed a
few seconds after the last event, TZ=UTC, fixed terminal sizes, no cursor blink, no
animations. Each snapshot also asserts on the app's state, not only on pixels.
Update after a deliberate change: ``pytest tests/tui --snapshot-update``, then look at
the SVGs (or ``snapshot_report.html``) before committing them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui.recorded import DEPLOY_ID
from tui.app import RoomApp
from tui.screens.confirm import ConfirmRollback
from tui.screens.flags import FlagsScreen
from tui.screens.help import HelpScreen
from tui.settle import settled

WIDE = (120, 36)
SMALL = (80, 24)
Room = Callable[..., RoomApp]


def test_idle(snap_compare: Any, room: Room) -> None:
    app = room(None)
    assert snap_compare(app, terminal_size=WIDE, run_before=settled)
    assert app.state.status == "idle"


def test_mid_deployment(snap_compare: Any, room: Room) -> None:
    app = room("mid")
    assert snap_compare(app, terminal_size=WIDE, run_before=settled)
    assert app.state.current_phase is not None
    assert app.state.current_phase.name == "switch"


def test_mid_deployment_80x24(snap_compare: Any, room: Room) -> None:
    app = room("mid")
    assert snap_compare(app, terminal_size=SMALL, run_before=settled)
    assert app.room.has_class("-narrow") and app.room.has_class("-short")


def test_succeeded(snap_compare: Any, room: Room) -> None:
    app = room("done")
    assert snap_compare(app, terminal_size=WIDE, run_before=settled)
    assert app.state.status == "succeeded"


def pressing(*keys: str, seen: dict[str, Any]) -> Callable[[Pilot[Any]], Any]:
    """A run_before that settles, presses ``keys`` and notes the screen shown."""

    async def run(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press(*keys)
        await settled(pilot)
        seen["screen"] = screen = pilot.app.screen
        seen["armed"] = getattr(screen, "armed", None)

    return run


def test_rollback_confirmation(snap_compare: Any, room: Room) -> None:
    app = room("mid")
    seen: dict[str, Any] = {}
    typed = DEPLOY_ID[:-2]  # typed, but not all of it: the button is not armed yet
    assert snap_compare(app, terminal_size=WIDE, run_before=pressing("R", *typed, seen=seen))
    assert isinstance(seen["screen"], ConfirmRollback)
    assert seen["armed"] is False


def test_rollback_in_progress(snap_compare: Any, room: Room) -> None:
    app = room("rollback")
    assert snap_compare(app, terminal_size=WIDE, run_before=settled)
    assert app.state.status == "rolling-back"
    assert [p.status for p in app.state.timeline][:5] == ["done"] * 4 + ["running"]


def test_rolled_back_80x24(snap_compare: Any, room: Room) -> None:
    app = room("rolled_back")
    assert snap_compare(app, terminal_size=SMALL, run_before=settled)
    assert app.state.status == "rolled-back"


def test_flags_screen(snap_compare: Any, room: Room) -> None:
    app = room("done")
    seen: dict[str, Any] = {}
    assert snap_compare(app, terminal_size=WIDE, run_before=pressing("f", "down", seen=seen))
    assert isinstance(seen["screen"], FlagsScreen)


def test_watch_mode(snap_compare: Any, room: Room) -> None:
    app = room("mid", watch=True)
    assert snap_compare(app, terminal_size=WIDE, run_before=settled)
    bound = {b.action for group in app._bindings.key_to_bindings.values() for b in group}
    assert app.WATCH and "deploy" not in bound and "rollback" not in bound


def test_watch_mode_help_lists_no_dangerous_action(snap_compare: Any, room: Room) -> None:
    app = room("mid", watch=True)
    seen: dict[str, Any] = {}
    assert snap_compare(app, terminal_size=SMALL, run_before=pressing("question_mark", seen=seen))
    assert isinstance(seen["screen"], HelpScreen)
    assert not [a for a in seen["screen"].actions if a.dangerous]


def test_help_screen(snap_compare: Any, room: Room) -> None:
    app = room("mid")
    seen: dict[str, Any] = {}
    assert snap_compare(app, terminal_size=WIDE, run_before=pressing("f1", seen=seen))
    assert isinstance(seen["screen"], HelpScreen)


@pytest.mark.parametrize("theme", ["portal-light", "portal-high-contrast", "ansi-dark"])
def test_themes(snap_compare: Any, room: Room, theme: str) -> None:
    app = room("rollback", theme=theme)
    assert snap_compare(app, terminal_size=WIDE, run_before=settled)
    assert app.theme == theme


def test_no_color(snap_compare: Any, room: Room, monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_COLOR: Textual drops colour; severities still read by their labels."""
    from textual.filter import Monochrome, NoColor

    monkeypatch.setenv("NO_COLOR", "1")
    app = room("rollback")
    assert any(isinstance(f, Monochrome | NoColor) for f in app._filters)
    seen: dict[str, Any] = {}

    async def run(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        seen["lines"] = app.room.log_widget.plain_lines()

    assert snap_compare(app, terminal_size=WIDE, run_before=run)
    lines = seen["lines"]
    assert any(" CRIT " in line for line in lines) and any(" WARN " in line for line in lines)
