"""A module that loads on its first attribute access, for libraries a run may not need.

``httpx`` = 6 MB and 0.1 s (it pulls rich and pygments in for its own CLI); a deployment
whose checks make no HTTP request never needs it, yet the checks name ``httpx.HTTPError``
in their ``except`` clauses. ``lazy_module("httpx")`` gives those modules a name to hold
that costs nothing until a request is made or an exception is matched against it.

The first attribute read imports the real module (once, under a lock) and the stand-in
takes its namespace; ``sys.modules`` then holds the real module, so other modules' own
``import httpx`` get it. Not the standard library's ``LazyLoader``: before Python 3.12 it
marked the module loaded, then executed it, so a second thread (the control room's
notifier beside its event loop) read attributes not defined yet.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

_LOADING = threading.RLock()  # one load at a time; a second first user waits for it


class _LazyModule(ModuleType):
    """Stands for a module until an attribute it lacks is read (then it has them all)."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(_load(self), attr)


def _load(stand_in: _LazyModule) -> ModuleType:
    name = stand_in.__name__
    with _LOADING:
        real = stand_in.__dict__.get("__lazy_real__")
        if real is None:
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]  # so the import below executes the real module
            real = importlib.import_module(name)
            stand_in.__dict__.update(real.__dict__)
            stand_in.__dict__["__lazy_real__"] = real
        return real


def lazy_module(name: str) -> ModuleType:
    """``name``, imported now if it already is, else on the first attribute read."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    stand_in = _LazyModule(name)
    stand_in.__spec__ = spec  # find_spec(name) by others reads it from sys.modules
    sys.modules[name] = stand_in
    return stand_in
