"""A module that loads on its first attribute access, for libraries a run may not need.

``httpx`` = 6 MB and 0.1 s (it pulls rich and pygments in for its own CLI); a deployment
whose checks make no HTTP request never needs it, yet the checks name ``httpx.HTTPError``
in their ``except`` clauses. ``lazy_module("httpx")`` gives those modules a name to hold
that costs nothing until a request is made or an exception is matched against it. This is
the standard library's recipe (``importlib.util.LazyLoader``), not an import hook: other
modules' own ``import httpx`` then gets the same module and loads it on first use too.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """``name``, imported now if it already is, else on the first attribute read."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
