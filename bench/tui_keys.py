"""Every key's first visible response in the control room, measured with Pilot.

A room over the recorded rollback (tests/tui/recorded.py) at 80x24 and 120x36. For each key
two clocks run from the moment the key event reaches the app:

- **paint**: until the first frame the room renders after it (the compositor's update,
  turned into terminal bytes as a real terminal would get them) — what the operator sees
  first;
- **settled**: until the room names nothing pending (``RoomApp.unsettled()``: the new state
  drawn, tables laid out, the screen repainted) — the whole answer.

The key is sent as Pilot sends it, without ``Pilot.press``'s own waits (two 20 ms sleeps
guessing idleness from CPU time: they measured Pilot, not the room). The wait polls every
millisecond, so it neither spins the CPU it measures nor starves the room's threads.
Before the first key the room has finished its start-up work (flag listing, notifier,
publisher, live health), and garbage collection is set up as `portal-ops ui` has it (held
until the first frame, then the launch's objects frozen out of later collections). Keys that open a screen are closed again
(escape) before the next. Best and median of N rounds, in wall time and in CPU time of this
process; `t` (theme) is also listed per theme. Run by hand, on a quiet machine:

    python bench/tui_keys.py [--rounds 5] [--keys t,R] [--size 80x24]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
POLL = 0.001  # seconds between looks at the room while waiting


class Frames:
    """Counts the frames the app renders; each one is turned into terminal bytes, as the
    real driver would (headless Textual skips that part of the work)."""

    def __init__(self, app: Any) -> None:
        self.count = 0
        self.last = 0.0
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            original(screen, renderable)
            if renderable is None or app._batch_count:
                return
            from textual._compositor import CompositorUpdate

            if isinstance(renderable, CompositorUpdate):
                renderable.render_segments(app.console)
            self.count += 1
            self.last = time.perf_counter()

        app._display = display


def send_key(app: Any, key: str) -> None:
    """What ``Pilot.press`` sends for one key, without its waits."""
    from textual import events
    from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key

    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    original = REPLACED_KEYS.get(key, key)
    try:
        char: str | None = unicodedata.lookup(_get_unicode_name_from_key(original))
    except KeyError:
        char = key if len(key) == 1 else None
    event = events.Key(key, char)
    event.set_sender(app)
    app._driver.send_message(event)


async def wait_settled(app: Any, timeout: float = 60.0) -> None:
    """Until the room names nothing pending twice in a row; fail naming what is."""
    from tui.settle import still

    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 2:
        still(app)  # a blinking cursor is never "settled"
        reason = app.unsettled()
        quiet = quiet + 1 if reason is None else 0
        if reason is not None and time.monotonic() > deadline:
            raise TimeoutError(f"the room did not settle in {timeout:g}s: {reason}")
        await asyncio.sleep(POLL)


async def press(app: Any, frames: Frames, key: str) -> tuple[float, float, float]:
    """(paint, settled) wall seconds and CPU seconds from the key to the room settled."""
    painted = frames.count
    started, cpu = time.perf_counter(), time.process_time()
    send_key(app, key)
    await wait_settled(app)
    settled, used = time.perf_counter() - started, time.process_time() - cpu
    paint = frames.last - started if frames.count > painted else settled
    return paint, settled, used


Timings = dict[str, list[tuple[float, float, float]]]  # key -> (paint, settled, cpu) per round


async def measure(
    size: tuple[int, int], rounds: int, keys: tuple[tuple[str, tuple[str, ...]], ...]
) -> tuple[Timings, dict[str, list[float]]]:
    from tests.tui.recorded import build_room

    out: Timings = {k: [] for k, _ in keys}
    themes: dict[str, list[float]] = {}
    try:  # as `portal-ops ui` launches it: collection held until the first frame, then frozen
        from tui.startup import hold_gc
    except ImportError:  # a checkout from before tui/startup.py
        pass
    else:
        hold_gc()
    with tempfile.TemporaryDirectory() as tmp:
        app = build_room(Path(tmp) / "journal.db", "rollback")
        async with app.run_test(size=size):
            frames = Frames(app)
            await app.wait_caught_up(60)
            await wait_settled(app)  # the start-up work (notifier, live health) is done
            for _ in range(rounds):
                for key, undo in keys:
                    timing = await press(app, frames, key)
                    out[key].append(timing)
                    if key == "t":
                        themes.setdefault(app.theme, []).append(timing[2])
                    for other in undo:
                        await press(app, frames, other)
    return out, themes


def ms(values: list[float], pick: Callable[[list[float]], float]) -> str:
    return f"{pick(values) * 1000:6.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keys", default="", help="comma-separated subset, e.g. t,R,ctrl+p")
    parser.add_argument("--size", default="80x24,120x36", help="e.g. 80x24 or 80x24,120x36")
    args = parser.parse_args(argv)
    chosen = set(filter(None, args.keys.split(",")))
    keys = tuple(k for k in KEYS if not chosen or k[0] in chosen)
    for text in args.size.split(","):
        cols, rows = (int(v) for v in text.lower().split("x"))
        timings, themes = asyncio.run(measure((cols, rows), args.rounds, keys))
        print(
            f"\n{cols}x{rows}, {args.rounds} rounds (load {os.getloadavg()[0]:.1f}):"
            "  paint median/worst   settled best/median/worst   cpu median/worst  (ms)"
        )
        for key, values in timings.items():
            paint = [p for p, _, _ in values]
            settled = [s for _, s, _ in values]
            cpu = [c for _, _, c in values]
            print(
                f"  {key:<14} {ms(paint, statistics.median)} {ms(paint, max)}   "
                f"{ms(settled, min)} {ms(settled, statistics.median)} {ms(settled, max)}   "
                f"{ms(cpu, statistics.median)} {ms(cpu, max)}"
            )
        for theme, cpus in themes.items():
            print(f"  t -> {theme:<22} cpu {', '.join(f'{c * 1000:.0f}' for c in cpus)} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
