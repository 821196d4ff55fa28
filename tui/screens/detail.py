"""One log line, whole: its text wrapped, and the evidence behind it (Enter in the log).

A CRIT reason used to be readable only in a toast that disappears; here it stays until
escape, and scrolls when the evidence is longer than the screen.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from ..state import SEVERITY_LABEL, LogLine
from ..widgets import _format as fmt


class LogDetail(ModalScreen[None]):
    # textual declares these `ClassVar[...] | None`, which mypy reads as instance variables
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-short"), (32, "-tall")]  # type: ignore[misc]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter,q", "close", "Close", id="portal-ops.detail-close")
    ]

    def __init__(self, line: LogLine) -> None:
        super().__init__()
        self.line = line

    @property
    def text(self) -> str:
        line = self.line
        label = SEVERITY_LABEL.get(line.severity, line.severity.upper())
        head = f"{fmt.clock(line.ts)}  {label}  {line.source}"
        body = f"{head}\n\n{line.text}"
        if line.detail:
            body += f"\n\nEvidence:\n{line.detail}"
        return body

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -detail"):
            yield Label("Log line", classes="title")
            with VerticalScroll(id="detail-body"):
                yield Static(self.text, markup=False)
            yield Label("escape or enter closes · the text scrolls", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
