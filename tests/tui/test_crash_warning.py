"""`portal-ops ui` no longer reads the hosts for the crash warning before its first frame:
the room does it once the frame is painted and says it in a toast (printed on stderr before
the room, the warning was hidden behind the full screen until the room closed, and the
first frame waited for every host to answer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.tui.conftest import until
from tui.app import RoomApp
from tui.settle import settled

DEPLOY_ID = "bp-20250801-0200"


def _toasts(app: RoomApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_the_room_warns_of_a_deployment_that_did_not_finish(
    room: Callable[..., RoomApp],
) -> None:
    app = room("mid", check_unfinished=True)  # recorded mid-run: its process is gone
    async with app.run_test(size=(120, 36)) as pilot:
        await settled(pilot)
        await until(
            lambda: any("did not finish" in t for t in _toasts(app)), seen=lambda: _toasts(app)
        )
        warning = next(t for t in _toasts(app) if "did not finish" in t)
        assert DEPLOY_ID in warning and f"portal-ops rollback {DEPLOY_ID}" in warning


async def test_no_warning_unless_asked_or_needed(room: Callable[..., Any]) -> None:
    for app in (room("mid"), room(None, check_unfinished=True)):
        async with app.run_test(size=(80, 24)) as pilot:
            await settled(pilot)
            assert not any("did not finish" in t for t in _toasts(app))
