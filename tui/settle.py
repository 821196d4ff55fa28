"""Waiting for the control room to settle: for snapshot tests, screenshots and benches.

A picture is taken once the room names nothing pending (:meth:`RoomApp.unsettled`), twice
in a row: never after a fixed pause, and never on Textual's guess of idleness from CPU
time, which a loaded machine fakes (the process gets no CPU and looks idle).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from textual.widgets import Input

if TYPE_CHECKING:
    from textual.pilot import Pilot

    from .app import RoomApp


def still(app: RoomApp) -> None:
    """No blinking cursor anywhere on the current screen (pictures compare pixels)."""
    for box in app.screen.query(Input):
        box.cursor_blink = False


async def settled(pilot: Pilot[Any], timeout: float = 30.0) -> None:
    """Return once the room is caught up and nothing is pending; fail naming what is."""
    from .app import RoomApp

    app = pilot.app
    assert isinstance(app, RoomApp), f"{app!r} is not a control room"
    await app.wait_caught_up(timeout)
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 2:
        still(app)
        await pilot.pause()
        reason = app.unsettled()
        quiet = quiet + 1 if reason is None else 0
        if reason is not None:
            if time.monotonic() > deadline:
                raise AssertionError(f"the room did not settle in {timeout}s: {reason}")
            await asyncio.sleep(0.01)
