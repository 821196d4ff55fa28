"""Every key's first visible response in the control room, measured with Pilot.

A room over the recorded rollback (tests/tui/recorded.py) at 80x24 and 120x36; for each key
the clock runs from the press to the moment the room names nothing pending
(``RoomApp.unsettled()``: the new state drawn, tables laid out, the screen repainted) —
the earliest the terminal can show the answer. Keys that open a screen are closed again
(escape) before the next. Best and median of N rounds; run by hand:

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


async def measure(size: tuple[int, int], rounds: int) -> dict[str, list[float]]:
    from tests.tui.recorded import build_room

    out: dict[str, list[float]] = {k: [] for k, _ in KEYS}
    with tempfile.TemporaryDirectory() as tmp:
        app = build_room(Path(tmp) / "journal.db", "rollback")
        async with app.run_test(size=size) as pilot:
            await app.wait_caught_up()
            await _settle(app)
            for _ in range(rounds):
                for key, undo in KEYS:
                    started = time.perf_counter()
                    await pilot.press(key)
                    await _settle(app)
                    out[key].append(time.perf_counter() - started)
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
        print(f"\n{size[0]}x{size[1]}: key, best ms, median ms, worst ms")
        for key, values in timings.items():
            ms = [v * 1000 for v in values]
            print(f"  {key:<14} {min(ms):7.1f} {statistics.median(ms):7.1f} {max(ms):7.1f}")


if __name__ == "__main__":
    main()
