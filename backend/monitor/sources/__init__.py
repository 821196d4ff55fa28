"""Metric sources: synthetic probes, Prometheus /metrics, access logs over the transport.

Each source is a long-running coroutine that adds observations to the open window
(:class:`backend.monitor.window.Windows`); cancelling it stops it (and, for the access log,
the remote ``tail``). Problems (a host unreachable, a scrape failing, lines that do not
match the format) go to a ``warn(key, host, message)`` callback, never up as exceptions.
"""

from __future__ import annotations

from collections.abc import Callable

Warn = Callable[[str, str | None, str], None]  # (key, host, message); key dedupes repeats
Recover = Callable[[str], None]  # the problem behind key is gone

__all__ = ["Recover", "Warn"]
