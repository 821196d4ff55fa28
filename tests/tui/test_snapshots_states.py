"""Snapshots of issue 16's states at 80x24 and 200x50: idle with live health, the plan
dialog, mid-rollback, after an automatic rollback, a watcher on the last deployment, and
NO_COLOR. Deterministic like test_snapshots.py: recorded events, a fixed clock, fixed
sizes; live samples are handed to the room exactly as tui/health.py hands them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from backend.events import Event, Kind
from tests.tui import recorded
from tui.app import RoomApp
from tui.screens.confirm import ConfirmDeploy
from tui.settle import settled

SIZES = {"80x24": (80, 24), "200x50": (200, 50)}
Room = Callable[..., RoomApp]

PLAN = "\n".join(
    f"[{phase}] {host}: $ {command}"
    for phase, command in (
        ("code", "git archive 9f3c2a1 | tar -x -C releases/20250801020000"),
        ("code", "composer install --no-dev --optimize-autoloader"),
        ("database", "php artisan migrate --force"),
        ("switch", "ln -sfn releases/20250801020000 current.tmp && mv -T current.tmp current"),
        ("switch", "sudo systemctl reload php8.2-fpm"),
    )
    for host in recorded.HOSTS
)


def live_samples(app: RoomApp, now: float, seconds: float = 30.0) -> None:
    """Live samples up to 2 s before ``now``, as the room's own sampler delivers them."""
    t = now - seconds
    while t <= now - 2:
        values = recorded.sample(t - recorded.T0)
        app._live_sample(Event(kind=Kind.METRIC_SAMPLE.value, run="live", data=values, ts=t))
        for i, host in enumerate(recorded.HOSTS):
            data = recorded.sample(t - recorded.T0 + i * 3)
            app._live_sample(
                Event(kind=Kind.METRIC_SAMPLE.value, run="live", host=host, data=data, ts=t)
            )
        t += 2.0


@pytest.mark.parametrize("size", SIZES)
def test_idle_with_live_health(snap_compare: Any, room: Room, size: str) -> None:
    app = room("done")

    async def run(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        live_samples(app, app.clock())
        app.bridge.flush()  # type: ignore[union-attr]
        await settled(pilot)

    assert snap_compare(app, terminal_size=SIZES[size], run_before=run)
    assert app.state.health_live and app.state.sample_age(app.clock()) == 2.0


@pytest.mark.parametrize("size", SIZES)
def test_plan_dialog(snap_compare: Any, room: Room, size: str) -> None:
    app = room("done")
    seen: dict[str, Any] = {}

    async def run(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        dialog = ConfirmDeploy("business-portal: revision main, on 3 host(s)", PLAN)
        app.open_plan(dialog)  # type: ignore[attr-defined]
        await settled(pilot)
        seen["screen"] = app.screen

    assert snap_compare(app, terminal_size=SIZES[size], run_before=run)
    assert isinstance(seen["screen"], ConfirmDeploy)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("stage", ["rollback", "rolled_back"])
def test_rollback_states(snap_compare: Any, room: Room, size: str, stage: str) -> None:
    app = room(stage)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=settled)
    assert app.state.rollback is not None
    assert app.state.rollback.trigger.startswith("automatic:")


@pytest.mark.parametrize("size", SIZES)
def test_watcher_on_the_last_deployment(snap_compare: Any, room: Room, size: str) -> None:
    app = room("done", watch=True)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=settled)
    assert app.state.deployment is not None and app.state.status == "succeeded"


@pytest.mark.parametrize("size", SIZES)
def test_no_color_after_a_rollback(
    snap_compare: Any, room: Room, size: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = room("rolled_back")
    assert snap_compare(app, terminal_size=SIZES[size], run_before=settled)
