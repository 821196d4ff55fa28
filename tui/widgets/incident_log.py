"""The incident log: every line the deployment produced, timestamped, labelled by severity.

Built on the Line API (a ScrollView that renders only the visible rows), so ten thousand
lines cost a list of small records, not ten thousand widgets. Severities are labels
first (``WARN``, ``ERROR``, ``CRIT``), colours second. Filtering (text and a minimum
severity) rebuilds a view over the kept lines; the tail is followed only while the view
is at the bottom, so scrolling up to read is never yanked away.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from itertools import accumulate
from typing import ClassVar, Unpack

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..state import SEVERITY_LABEL, SEVERITY_RANK, LogLine
from . import _format as fmt
from ._options import WidgetOptions

DEFAULT_MAX_LINES = 10_000
LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")  # the severity filter cycle
_SOURCE_WIDTH = 10
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def clean(text: str) -> str:
    """Command output as one printable line: colour codes dropped, controls made visible."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    return _CONTROL.sub("?", text.replace("\t", "    "))


class IncidentLog(ScrollView, can_focus=True):
    """A bounded, filterable log of :class:`LogLine` records, cut at the edge or wrapped;
    up/down move a cursor, Enter asks for the line's detail (:class:`IncidentLog.Detail`)."""

    ALLOW_MAXIMIZE = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False, id="portal-ops.log-up"),
        Binding("down", "cursor(1)", "Down", show=False, id="portal-ops.log-down"),
        Binding("enter", "detail", "Detail", show=False, id="portal-ops.log-detail"),
    ]

    class Detail(Message):
        """The person asked to read ``line`` whole (Enter on it)."""

        def __init__(self, line: LogLine) -> None:
            super().__init__()
            self.line = line

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "incident-log--time",
        "incident-log--source",
        "incident-log--debug",
        "incident-log--info",
        "incident-log--ok",
        "incident-log--warning",
        "incident-log--error",
        "incident-log--critical",
        "incident-log--text-debug",
        "incident-log--text-error",
        "incident-log--text-critical",
        "incident-log--cursor",
    }

    def __init__(
        self, *, max_lines: int = DEFAULT_MAX_LINES, **kwargs: Unpack[WidgetOptions]
    ) -> None:
        super().__init__(**kwargs)
        self.max_lines = max_lines
        self._lines: list[tuple[int, LogLine]] = []  # (number, line), oldest first
        self._view: list[tuple[int, LogLine]] = self._lines
        self._next = 0
        self._width = 0
        self.filter_text = ""
        self.min_severity = "debug"
        self.following = True  # at the bottom: new lines scroll into view
        self.wrap = False  # long lines continue on the next rows instead of being cut
        self.cursor: int | None = None  # index in the view; None: the newest line
        self._ends: list[int] = []  # wrapped: cumulative row count after each view line
        self._cache: LRUCache[tuple[int, int, bool], Strip] = LRUCache(512)

    # -- content ----------------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self._lines)

    @property
    def shown(self) -> int:
        return len(self._view)

    def _matches(self, line: LogLine) -> bool:
        if SEVERITY_RANK.get(line.severity, 1) < SEVERITY_RANK[self.min_severity]:
            return False
        if not self.filter_text:
            return True
        needle = self.filter_text.lower()
        label = SEVERITY_LABEL.get(line.severity, line.severity)
        return needle in f"{label} {line.source} {line.text}".lower()

    @property
    def filtered(self) -> bool:
        return bool(self.filter_text) or self.min_severity != "debug"

    def append(self, lines: Iterable[LogLine]) -> None:
        """Add lines at the end; follow them if the view was at the bottom."""
        at_end = self.following
        added = 0
        for line in lines:
            record = (self._next, line)
            self._next += 1
            self._lines.append(record)
            if self._view is not self._lines and self._matches(line):
                self._view.append(record)
            self._width = max(self._width, self._cell_width(line))
            added += 1
        if not added:
            return
        self._prune()
        self._resize_virtual()
        if at_end:
            self._to_end()  # scrolled now: one repaint, not two
        self.refresh()

    def _prune(self) -> None:
        """Keep at most ``max_lines``; prune in chunks so appends stay O(1) amortised."""
        excess = len(self._lines) - self.max_lines
        if excess <= max(1, self.max_lines // 20):
            return
        cut = self._lines[excess][0]
        del self._lines[:excess]
        if self._view is not self._lines:
            del self._view[: bisect_left(self._view, cut, key=lambda r: r[0])]
        self._cache.clear()

    def set_filter(self, text: str | None = None, min_severity: str | None = None) -> None:
        """Show only lines containing ``text`` (any case) at ``min_severity`` or above."""
        if text is not None:
            self.filter_text = text.strip()
        if min_severity is not None:
            self.min_severity = min_severity
        if self.filtered:
            self._view = [r for r in self._lines if self._matches(r[1])]
        else:
            self._view = self._lines
        self._cache.clear()
        self.cursor = None
        self._resize_virtual()
        self.follow()
        self.refresh()

    # -- wrapping and the cursor --------------------------------------------------------

    def _text_width(self) -> int:
        return max(10, self.scrollable_content_region.width or self.size.width or 80)

    def _resize_virtual(self) -> None:
        if not self.wrap:
            self._ends = []
            self.virtual_size = Size(self._width, len(self._view))
            return
        width = self._text_width()
        self._ends = list(
            accumulate(max(1, -(-self._cell_width(line) // width)) for _, line in self._view)
        )
        self.virtual_size = Size(width, self._ends[-1] if self._ends else 0)

    def set_wrap(self, wrap: bool) -> None:
        self.wrap = wrap
        self._cache.clear()
        self.scroll_x = 0
        self._resize_virtual()
        if self.following:
            self._to_end()
        self.refresh()

    def _row_of(self, index: int) -> int:
        """The first row of view line ``index``."""
        if not self.wrap:
            return index
        return self._ends[index - 1] if index > 0 and self._ends else 0

    def _line_at(self, row: int) -> tuple[int, int]:
        """(view index, row within that line) of a virtual row."""
        if not self.wrap:
            return row, 0
        index = bisect_right(self._ends, row)
        return index, row - self._row_of(index)

    @property
    def current(self) -> LogLine | None:
        """The line under the cursor (the newest one when no cursor was moved)."""
        if not self._view:
            return None
        index = len(self._view) - 1 if self.cursor is None else self.cursor
        return self._view[min(index, len(self._view) - 1)][1]

    def action_cursor(self, step: int) -> None:
        if not self._view:
            return
        last = len(self._view) - 1
        index = last if self.cursor is None else self.cursor
        if self.cursor is None and step < 0:  # the first press shows the cursor on the newest
            step += 1
        index = max(0, min(last, index + step))
        self.cursor = index
        top = self._row_of(index)
        bottom = self._row_of(index + 1) - 1 if self.wrap and index < last else top
        if top < self.scroll_y:
            self.scroll_to(y=top, animate=False)
        elif bottom >= self.scroll_y + self.scrollable_content_region.height:
            self.scroll_to(y=bottom - self.scrollable_content_region.height + 1, animate=False)
        self.following = index == last and self.scroll_y >= self.max_scroll_y - 1
        self._cache.clear()
        self.refresh()

    def action_detail(self) -> None:
        line = self.current
        if line is not None:
            self.post_message(self.Detail(line))

    def follow(self) -> None:
        self.following = True
        if self.cursor is not None:
            self.cursor = None
            self._cache.clear()
            self.refresh()
        self._to_end()

    def _to_end(self) -> None:
        if self.size.height:
            self.scroll_y = self.max_scroll_y
            if not self.show_vertical_scrollbar:  # it appears at the next layout, at 0
                self.call_after_refresh(self._sync_scrollbar)
        else:  # before the first layout the height is unknown: scroll after it
            self.scroll_end(animate=False, x_axis=False)

    def _sync_scrollbar(self) -> None:
        if self.show_vertical_scrollbar:
            self.vertical_scrollbar.position = self.scroll_y

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        """Scrolling up to read stops following the tail; coming back down resumes it."""
        super().watch_scroll_y(old_value, new_value)
        self.following = new_value >= self.max_scroll_y - 1

    def plain_lines(self) -> list[str]:
        """The shown lines as text (tests, copy-out)."""
        return [self._plain(line) for _, line in self._view]

    # -- rendering --------------------------------------------------------------------

    @staticmethod
    def _prefix(line: LogLine) -> tuple[str, str, str]:
        label = SEVERITY_LABEL.get(line.severity, line.severity.upper())
        source = line.source[:_SOURCE_WIDTH].ljust(_SOURCE_WIDTH)
        return fmt.clock(line.ts), f"{label:<5}", source

    def _plain(self, line: LogLine) -> str:
        when, label, source = self._prefix(line)
        return f"{when} {label} {source} {clean(line.text)}"

    def _cell_width(self, line: LogLine) -> int:
        return 8 + 1 + 5 + 1 + _SOURCE_WIDTH + 1 + cell_len(line.text)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    def on_resize(self) -> None:
        self._cache.clear()
        if self.wrap:
            self._resize_virtual()
        if self.following:
            self.call_after_refresh(self._to_end)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        base = self.rich_style
        if not self._view and y == 0 and self._lines:
            return self._nothing_matches(width, base)
        index, part = self._line_at(row)
        if index >= len(self._view):
            return Strip.blank(width, base)
        number, line = self._view[index]
        if index == self.cursor and self.has_focus:
            base = base + self.get_component_rich_style("incident-log--cursor", partial=True)
        start = part * self._text_width() if self.wrap else scroll_x
        key = (number, start, index == self.cursor)
        strip = self._cache.get(key)
        if strip is None:
            strip = self._line_strip(line, base).crop_extend(start, start + width, base)
            self._cache[key] = strip
        return strip.apply_offsets(start, row)

    def _nothing_matches(self, width: int, base: Style) -> Strip:
        """An empty result says so, and why, rather than showing a blank pane."""
        why = []
        if self.filter_text:
            why.append(f'containing "{self.filter_text}"')
        if self.min_severity != "debug":
            why.append(f"at {SEVERITY_LABEL.get(self.min_severity, self.min_severity)} or above")
        text = f"0 lines match ({' and '.join(why)}) of {self.total} · escape clears the filter"
        muted = self._style("incident-log--time", base)
        return Strip([Segment(text, muted)]).crop_extend(0, width, base)

    def _style(self, component: str, base: Style) -> Style:
        return base + self.get_component_rich_style(component, partial=True)

    def _line_strip(self, line: LogLine, base: Style) -> Strip:
        when, label, source = self._prefix(line)
        sev = line.severity if line.severity in SEVERITY_RANK else "info"
        text_style = base
        if sev in ("debug", "error", "critical"):
            text_style = self._style(f"incident-log--text-{sev}", base)
        segments = [  # few segments per row: each one costs a full colour code on the wire
            Segment(when + " ", self._style("incident-log--time", base)),
            Segment(label, self._style(f"incident-log--{sev}", base)),
            Segment(" " + source + " ", self._style("incident-log--source", base)),
            Segment(clean(line.text), text_style),
        ]
        return Strip(segments)
