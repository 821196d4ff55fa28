"""One host: what it serves, how healthy it is (and how old that figure is), and every
step it ran with its output, from the log the room already keeps (Enter on a host)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from ..state import SEVERITY_LABEL, HostView, LogLine
from ..widgets import _format as fmt
from ..widgets.incident_log import clean

MAX_LINES = 2000  # the newest lines of this host: a long install is still readable


class HostDetail(ModalScreen[None]):
    # textual declares these `ClassVar[...] | None`, which mypy reads as instance variables
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-short"), (32, "-tall")]  # type: ignore[misc]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter,q", "close", "Close", id="portal-ops.host-close")
    ]

    def __init__(self, host: HostView, lines: Sequence[LogLine], now: float) -> None:
        super().__init__()
        self.view = host
        self.host = host.name
        self.lines = list(lines)[-MAX_LINES:]
        self.now = now

    @property
    def text(self) -> str:
        h = self.view
        if h.sampled_at is None:
            health = "p95 -, errors - (no sample since its release changed)"
        else:
            age = fmt.age(max(0.0, self.now - h.sampled_at))
            health = f"p95 {fmt.ms(h.p95)}, errors {fmt.percent(h.error_rate)} ({age})"
        step = h.step + (" (failed)" if h.step_failed else "") if h.step else "-"
        head = (
            f"{h.name}: {h.state}, release {h.release or 'unknown'}\n"
            f"health: {health}\nlast step: {step}"
        )
        body = [
            f"{fmt.clock(line.ts)} {SEVERITY_LABEL.get(line.severity, line.severity):<5}"
            f" {clean(line.text)}"
            for line in self.lines
        ]
        return head + "\n\nSteps and output:\n" + ("\n".join(body) or "(none in the log)")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -detail"):
            yield Label(f"Host {self.host}", classes="title")
            with VerticalScroll(id="detail-body"):
                yield Static(self.text, markup=False)
            yield Label("escape or enter closes · the text scrolls", classes="hint")

    def on_mount(self) -> None:
        body = self.query_one("#detail-body", VerticalScroll)
        body.scroll_end(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
