"""Write SVG screenshots of the control room's main states into screenshots/.

The same recorded data, fixed clock and time zone as the snapshot tests
(tests/tui/recorded.py), so the README's pictures are what the tests check.

    python scripts/export_screenshots.py [--out screenshots] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["TZ"] = "UTC"
os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
time.tzset()


from tests.tui.recorded import DEPLOY_ID, build_room  # noqa: E402
from tui.settle import settled  # noqa: E402


@dataclass
class Shot:
    name: str
    stage: str | None
    size: tuple[int, int] = (120, 36)
    keys: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    title: str = ""


SHOTS: tuple[Shot, ...] = (
    Shot("idle", None, title="Idle: no deployment yet"),
    Shot("mid-deployment", "mid", title="Mid-deployment: phase 6 of 9, switching hosts"),
    Shot("mid-deployment-80x24", "mid", (80, 24), title="The same at 80x24"),
    Shot("succeeded", "done", title="A deployment that succeeded"),
    Shot(
        "rollback-confirmation",
        "mid",
        keys=("R", *DEPLOY_ID[:-2]),
        title="Rollback: type the deployment id to arm it",
    ),
    Shot("rollback-in-progress", "rollback", title="Rollback in progress: the ten phases"),
    Shot("rolled-back-80x24", "rolled_back", (80, 24), title="Rolled back, at 80x24"),
    Shot("flags", "done", keys=("f", "down"), title="The flags screen"),
    Shot("watch", "mid", options={"watch": True}, title="Watch mode: read-only"),
    Shot("help", "mid", keys=("f1",), title="Help: every key, from the action registry"),
    Shot("theme-light", "rollback", options={"theme": "portal-light"}, title="portal-light"),
    Shot(
        "theme-high-contrast",
        "rollback",
        options={"theme": "portal-high-contrast"},
        title="portal-high-contrast",
    ),
    Shot("theme-ansi", "rollback", options={"theme": "ansi-dark"}, title="ansi-dark (16 colours)"),
)


async def _shoot(shot: Shot, out: Path, work: Path) -> Path:
    app = build_room(work / f"{shot.name}.db", shot.stage, **shot.options)
    async with app.run_test(size=shot.size) as pilot:
        await settled(pilot)
        if shot.keys:
            await pilot.press(*shot.keys)
            await settled(pilot)
        return Path(app.save_screenshot(f"{shot.name}.svg", str(out)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--only", nargs="*", help="names of the shots to take (default: all)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    shots = [s for s in SHOTS if not args.only or s.name in args.only]
    run: Callable[[Shot, Path, Path], Awaitable[Path]] = _shoot
    with tempfile.TemporaryDirectory(prefix="portal-ops-shots-") as tmp:
        for shot in shots:
            path = asyncio.run(run(shot, args.out, Path(tmp)))
            print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  {shot.title}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
