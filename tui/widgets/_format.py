"""Small, pure formatting helpers shared by the panes (durations, times, rates)."""

from __future__ import annotations

import time

from textual.content import Content
from textual.widget import Widget


def duration(seconds: float | None) -> str:
    """``0.4s``, ``12.3s``, ``2m05s``, ``1h02m``: short enough for a table column."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def clock(ts: float) -> str:
    """Local wall-clock time of an event, to the second."""
    return time.strftime("%H:%M:%S", time.localtime(ts))


def elapsed(seconds: float | None) -> str:
    """``03:12`` or ``1:03:12``: the header's running clock."""
    if seconds is None:
        return "--:--"
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def age(seconds: float | None) -> str:
    """``2s ago``, ``3m ago``, ``1h05m ago``: how old a figure is (every figure has one)."""
    if seconds is None:
        return "no sample yet"
    if seconds < 60:
        return f"{int(seconds)}s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    hours, minutes = divmod(int(seconds // 60), 60)
    return f"{hours}h{minutes:02d}m ago"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def percent(fraction: float | None, digits: int = 2) -> str:
    return "-" if fraction is None else f"{fraction * 100:.{digits}f}%"


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}/s"


def same(a: Content | None, b: Content) -> bool:
    """Equal text and styles: a pane that would repaint the same cells skips the repaint
    (Content's own ``==`` compares text only)."""
    return a is not None and a.plain == b.plain and a.spans == b.spans


def running_duration(seconds: float | None) -> str:
    """Whole seconds while a phase runs: the pane repaints once a second, not per event."""
    if seconds is None:
        return ""
    return duration(float(int(seconds))).replace(".0s", "s")


def titles(widget: Widget, title: str | None = None, subtitle: str | None = None) -> None:
    """Set a pane's border title and subtitle only when they change: Textual repaints the
    whole widget on every assignment, even of the same text."""
    if title is not None and widget.border_title != title:
        widget.border_title = title
    if subtitle is not None and widget.border_subtitle != subtitle:
        widget.border_subtitle = subtitle
