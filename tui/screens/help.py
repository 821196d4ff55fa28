"""The help screen (F1 or ?): every binding of this mode, from the one action registry."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
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
                "portal-ops keys" + (" (watch mode: read-only)" if self.watch_mode else ""),
                classes="title",
            )
            with VerticalScroll(id="help-table"):
                groups: dict[str, list[Action]] = {}
                for action in self.actions:
                    groups.setdefault(action.group, []).append(action)
                for group, actions in groups.items():
                    yield Static(Content.styled(group, "bold $accent"), classes="help-group")
                    for action in actions:
                        yield self._row(key_label(action), self._text(action))
                yield Static(Content.styled("Everywhere", "bold $accent"), classes="help-group")
                for keys, text in BUILTIN_KEYS:
                    yield self._row(keys, Content(text))
                if self.watch_mode:
                    yield Static(Content.styled(WATCH_NOTE, "$warning"), classes="help-note")
                yield Static(Content.styled(MOUSE_NOTE, "$foreground-muted"), classes="help-note")
            yield Label("escape closes", classes="hint")

    @staticmethod
    def _row(keys: str, text: Content) -> Horizontal:
        return Horizontal(
            Static(Content.styled(keys, "bold"), classes="help-keys"),
            Static(text, classes="help-text"),
            classes="help-row",
        )

    def _text(self, action: Action) -> Content:
        parts: list[tuple[str, str] | str] = [action.help]
        if action.guard:
            parts.append((f" [{action.guard}]", "$warning"))
        why = self.unavailable(action)
        if why:
            parts.append((f" (unavailable now: {why})", "$foreground-muted"))
        return Content.assemble(*parts)

    def on_mount(self) -> None:
        self.query_one("#help-table").focus()

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
