"""Import asyncssh without the linker searches of its post-quantum shim.

At import, asyncssh looks for liboqs with ``ctypes.util.find_library`` under two names.
Where the library is absent (most machines) each lookup runs ``ldconfig -p``, then
``gcc`` and ``ld`` to search the linker's paths: six process starts and 50-130 ms of wall
time at every start of portal-ops, more than a whole one-host command. While asyncssh is
imported here, a lookup asks the dynamic linker's cache only (``ldconfig -p``: where
``dlopen`` finds a library by its soname), so an installed liboqs is still found; one
only a compiler could find (``LIBRARY_PATH``) is not, and asyncssh then offers ML-KEM
through cryptography and no sntrup761, as on a machine without liboqs.
"""

from __future__ import annotations

import ctypes.util
import sys
from collections.abc import Callable
from types import ModuleType


def _cache_only_lookup() -> Callable[[str], str | None] | None:
    """The standard library's ld.so-cache half of ``find_library``, where it has one."""
    lookup = getattr(ctypes.util, "_findSoname_ldconfig", None)
    return lookup if callable(lookup) and sys.platform.startswith("linux") else None


def import_asyncssh() -> ModuleType:
    """``asyncssh``, imported with the cheap library lookup (see the module docstring)."""
    if "asyncssh" in sys.modules:
        return sys.modules["asyncssh"]
    lookup = _cache_only_lookup()
    if lookup is None:
        import asyncssh

        return asyncssh
    original = ctypes.util.find_library
    setattr(ctypes.util, "find_library", lookup)  # noqa: B010 (a private stand-in)
    try:
        import asyncssh
    finally:
        setattr(ctypes.util, "find_library", original)  # noqa: B010
    return asyncssh
