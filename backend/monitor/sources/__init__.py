"""Metric sources: synthetic probes, Prometheus /metrics, access logs over the transport.

Each source is a long-running coroutine that adds observations to the open window
(:class:`backend.monitor.window.Windows`); cancelling it stops it (and, for the access log,
the remote ``tail``). Problems (a host unreachable, a scrape failing, lines that do not
match the format) go to a ``warn(key, host, message)`` callback, never up as exceptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Warn = Callable[[str, str | None, str], None]  # (key, host, message); key dedupes repeats
Recover = Callable[[str], None]  # the problem behind key is gone

__all__ = ["Recover", "Warn", "run_every"]


async def run_every(interval: float, once: Callable[[], Awaitable[None]]) -> None:
    """Await ``once()`` at a fixed rate, every ``interval`` seconds from the first call, until
    cancelled; a call that overruns skips the slots it missed instead of bunching up."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    n = 0
    while True:
        await once()
        n = max(n + 1, int((loop.time() - started) / interval) + 1)  # skip missed slots
        await asyncio.sleep(max(0.0, started + n * interval - loop.time()))
