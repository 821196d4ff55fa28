"""The help screen (F1 or ?): every binding of this mode, from the one action registry."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from ..actions import Action, key_label

#: keys Textual provides everywhere, listed so the help is complete
BUILTIN_KEYS: tuple[tuple[str, str], ...] = (
    ("tab / shift+tab", "Move focus between panes"),
    ("up down pgup pgdn home end", "Scroll the focused pane; move the cursor in tables"),
    ("escape", "Close a dialog; restore a zoomed pane; clear the log filter"),
    ("ctrl+p", "Command palette: every action by name"),
    ("ctrl+q", "Quit (same as q)"),
)

WATCH_NOTE = (
    "Watch mode is read-only: deploy, rollback, pause and flag changes are not available"
    " here (not merely refused). Run `portal-ops ui` to operate."
)
MOUSE_NOTE = (
    "The mouse works but is never needed. To select text with the mouse, hold shift"
    " (most terminals; option on macOS Terminal/iTerm2) while dragging."
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "dismiss_help", "Close"),
    ]

    def __init__(
        self,
        actions: Sequence[Action],
        *,
        watch: bool,
        unavailable: Callable[[Action], str | None] = lambda action: None,
    ) -> None:
        super().__init__()
        self.actions = actions
        self.watch_mode = watch
        self.unavailable = unavailable

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(
                "portal-ops keys" + (" (watch mode)" if self.watch_mode else ""), classes="title"
            )
            with VerticalScroll(id="help-table"):
                yield Static(self.table(), id="help-body")
            yield Label("escape closes", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#help-table").focus()

    def table(self) -> Content:
        rows: list[Content] = []
        groups: dict[str, list[Action]] = {}
        for action in self.actions:
            groups.setdefault(action.group, []).append(action)
        for group, actions in groups.items():
            rows.append(Content.styled(group, "bold $accent"))
            for action in actions:
                why = self.unavailable(action)
                tail: list[tuple[str, str] | str] = []
                if action.dangerous:
                    tail.append(("  [asks first]", "$warning"))
                if why:
                    tail.append((f"  (unavailable: {why})", "$foreground-muted"))
                rows.append(
                    Content.assemble(
                        (f"  {key_label(action):<12}", "bold"),
                        action.help,
                        *tail,
                    )
                )
            rows.append(Content(""))
        rows.append(Content.styled("Everywhere", "bold $accent"))
        for keys, text in BUILTIN_KEYS:
            rows.append(
                Content.assemble((f"  {keys:<12}", "bold"), " " if len(keys) >= 12 else "", text)
            )
        rows.append(Content(""))
        if self.watch_mode:
            rows.append(Content.styled(WATCH_NOTE, "$warning"))
        rows.append(Content.styled(MOUSE_NOTE, "$foreground-muted"))
        return Content("\n").join(rows)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
