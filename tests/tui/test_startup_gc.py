"""The launch holds garbage collection until the room's first frame (tui/startup.py)."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator

import pytest

from tui.app import RoomApp
from tui.settle import settled
from tui.startup import gc_held, hold_gc, release_gc


@pytest.fixture
def collector() -> Iterator[None]:
    """Whatever a test does, the suite's collector ends as it began: on, nothing frozen."""
    yield
    release_gc()
    gc.unfreeze()
    gc.enable()


def test_hold_then_release_freezes_what_exists(collector: None) -> None:
    hold_gc()
    assert not gc.isenabled() and gc_held()
    release_gc()
    assert gc.isenabled() and not gc_held()
    assert gc.get_freeze_count() > 0
    release_gc()  # twice is harmless


def test_hold_leaves_a_collector_someone_else_turned_off(collector: None) -> None:
    gc.disable()
    hold_gc()
    release_gc()
    assert not gc.isenabled()  # not ours to turn back on


async def test_the_room_resumes_collection_once_its_first_frame_is_painted(
    room: Callable[..., RoomApp], collector: None
) -> None:
    app = room("mid")
    hold_gc()
    async with app.run_test(size=(80, 24)) as pilot:
        await settled(pilot)
        assert app.background_started
        assert gc.isenabled() and not gc_held()
        assert gc.get_freeze_count() > 0
