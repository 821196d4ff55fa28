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


async def until(
    condition: Callable[[], bool],
    timeout: float = 10.0,
    step: float = 0.05,
    seen: Callable[[], object] | None = None,
) -> None:
    """Wait for a condition the app reaches asynchronously (never a blind sleep); ``seen``
    says what there was instead when it times out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            instead = f"; instead: {seen()!r}" if seen is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {condition}{instead}")
        await asyncio.sleep(step)


@pytest.fixture(autouse=True)
def _no_idle_guessing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pilot's pause() guesses 'idle' from the process's CPU time, which a loaded machine
    fakes (the process gets no CPU and looks idle). Here it only yields to the loop, so
    every test must wait on a condition it names (``settled``, ``until``)."""
    import textual.pilot

    async def yield_a_little(*_args: Any, **_kwargs: Any) -> None:
        for _ in range(3):
            await asyncio.sleep(0)

    monkeypatch.setattr(textual.pilot, "wait_for_idle", yield_a_little)
