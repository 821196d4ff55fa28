"""Fixtures for the control room's tests: fixed time zone, recorded journals, app factories.

Snapshots must be the same on every machine: timestamps are shown in local time, so the
time zone is pinned to UTC; the clock the app reads is fixed to the recorded data; the
Input cursor does not blink.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")  # read once, when Textual is imported

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tests.tui.recorded import build_room
from tui.app import RoomApp


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def room(tmp_path: Path) -> Callable[..., RoomApp]:
    """``room(stage, watch=False, theme=None)``: a fresh room over its own journal."""
    counter = iter(range(1000))

    def make(stage: str | None = "mid", **kwargs: Any) -> RoomApp:
        return build_room(tmp_path / f"journal-{next(counter)}.db", stage, **kwargs)

    return make


def still(app: RoomApp) -> None:
    """No blinking cursor anywhere on the current screen (snapshots compare pixels)."""
    for box in app.screen.query(Input):
        box.cursor_blink = False


async def settled(pilot: Pilot[Any]) -> None:
    """The history is shown, the graphs drawn, nothing pending."""
    app = pilot.app
    assert isinstance(app, RoomApp)
    await app.wait_caught_up()
    await pilot.pause()
    still(app)
    await pilot.pause()


async def until(condition: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> None:
    """Wait for a condition the app reaches asynchronously (never a blind sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {condition}")
        await asyncio.sleep(step)
