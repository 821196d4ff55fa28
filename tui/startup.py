"""The control room's launch: no garbage collection until its first frame is painted.

Launching the room builds ~95,000 long-lived objects (modules, classes, config sections,
styles, widgets) and next to no garbage, yet CPython's collector walks them ~225 times on
the way (~50 ms of CPU, a third of it one full collection). :func:`hold_gc` turns it off for
the launch (``portal-ops ui``/``watch``); :func:`release_gc`, once the first frame is
painted, moves what the launch built to the permanent generation (``gc.freeze``: no later
collection walks it again, so no key press pays for a full walk of it) and turns
collection back on. A room not launched that way (tests, the demo's own set-up) never held
it and is left alone.
"""

from __future__ import annotations

import gc

_held = False


def hold_gc() -> None:
    """Pause the collector until :func:`release_gc` (a no-op if it is already off)."""
    global _held
    if gc.isenabled():
        gc.disable()
        _held = True


def release_gc() -> None:
    """Freeze what exists, turn the collector back on; only if :func:`hold_gc` paused it."""
    global _held
    if _held:
        _held = False
        gc.freeze()
        gc.enable()


def gc_held() -> bool:
    return _held


class StartupError(Exception):
    """The room closed before it began (a bad config, parsed after its first frame): what
    the command would have printed, to print once the terminal is given back, and its exit
    code."""

    def __init__(self, stderr: str, stdout: str = "", code: int = 2) -> None:
        super().__init__(stderr.strip() or f"exit {code}")
        self.stderr = stderr
        self.stdout = stdout
        self.code = code
