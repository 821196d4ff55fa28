"""Every key's first visible response in the control room, measured with Pilot.

A room over the recorded rollback (tests/tui/recorded.py) at 80x24 and 120x36; for each key
the clock runs from the press to the moment the room names nothing pending
(``RoomApp.unsettled()``: the new state drawn, tables laid out, the screen repainted) —
the earliest the terminal can show the answer. Keys that open a screen are closed again
(escape) before the next. Best and median of N rounds, in wall time and in CPU time of
this process (on a shared machine the CPU figure is what the room costs, the wall figure
adds the wait for a core); the first round is also shown alone (a screen or dialog built
for the first time). Run by hand:

    python bench/tui_keys.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")

# (keys, then keys that undo it) — every non-dangerous key, and R/d's dialogs
KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("1", ()), ("2", ()), ("3", ()), ("4", ("escape",)), ("5", ()), ("z", ("z",)),
    ("slash", ("escape",)), ("s", ("escape",)), ("w", ("w",)), ("G", ()),
    ("t", ()), ("question_mark", ("escape",)), ("f", ("escape",)), ("R", ("escape",)),
    ("ctrl+p", ("escape",)),
)  # fmt: skip


async def _settle(app: object, timeout: float = 30.0) -> None:
    from textual.app import App

    from tui.settle import still

    assert isinstance(app, App)
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 2:
        still(app)  # type: ignore[arg-type]  # a blinking cursor is never "settled"
        await asyncio.sleep(0)
        reason = app.unsettled()  # type: ignore[attr-defined]
        quiet = quiet + 1 if reason is None else 0
        if time.monotonic() > deadline:
            raise TimeoutError(reason)


Timings = dict[str, list[tuple[float, float]]]  # key -> (wall, cpu) seconds per round


async def measure(size: tuple[int, int], rounds: int) -> Timings:
    from tests.tui.recorded import build_room

    out: Timings = {k: [] for k, _ in KEYS}
    with tempfile.TemporaryDirectory() as tmp:
        app = build_room(Path(tmp) / "journal.db", "rollback")
        async with app.run_test(size=size) as pilot:
            await app.wait_caught_up()
            await _settle(app)
            for _ in range(rounds):
                for key, undo in KEYS:
                    started, cpu = time.perf_counter(), time.process_time()
                    await pilot.press(key)
                    await _settle(app)
                    out[key].append((time.perf_counter() - started, time.process_time() - cpu))
                    if undo:
                        await pilot.press(*undo)
                        await _settle(app)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for size in ((80, 24), (120, 36)):
        timings = asyncio.run(measure(size, args.rounds))
        print(
            f"\n{size[0]}x{size[1]} (load {os.getloadavg()[0]:.1f}): key,"
            " wall best/median/worst/first ms, cpu best/median/first ms"
        )
        for key, values in timings.items():
            wall = [w * 1000 for w, _ in values]
            cpu = [c * 1000 for _, c in values]
            print(
                f"  {key:<14} {min(wall):7.1f} {statistics.median(wall):7.1f}"
                f" {max(wall):7.1f} {wall[0]:7.1f}   {min(cpu):6.1f}"
                f" {statistics.median(cpu):6.1f} {cpu[0]:6.1f}"
            )


if __name__ == "__main__":
    main()
