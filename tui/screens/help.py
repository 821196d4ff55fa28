"""The help screen (F1 or ?): every binding of this mode, from the one action registry.

The key table is one widget that lays its rows out itself (keys in a column, the text
wrapped beside them): as ~150 Static/Horizontal widgets it took 0.3 s of CPU to mount,
style and lay out each time `?` was pressed, three times the 100 ms a key may take.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.geometry import Size
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Label

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


KEYS_WIDTH = 16  # the keys column, in cells
Row = tuple[str, Content | str, Content | None]  # kind ("group", "row", "note"), keys, text


class KeyTable(Widget):
    """Rows of keys and what they do, each text wrapped beside its keys, blank lines above
    group titles and notes; drawn for the width it is given."""

    DEFAULT_CSS = """
    KeyTable {
        height: auto;
    }
    """

    def __init__(self, rows: Sequence[Row], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows = tuple(rows)
        self._cache: tuple[int, list[Content]] | None = None

    @property
    def plain(self) -> str:
        """Every row's text, for tests and search."""
        return "\n".join(
            f"{Content(keys).plain if isinstance(keys, str) else keys.plain} "
            f"{text.plain if text else ''}"
            for _, keys, text in self.rows
        )

    def lines(self, width: int) -> list[Content]:
        if self._cache and self._cache[0] == width:
            return self._cache[1]
        width = max(width, KEYS_WIDTH + 8)
        out: list[Content] = []
        for kind, keys, text in self.rows:
            if kind in ("group", "note"):
                out.append(Content(""))
                content = keys if isinstance(keys, Content) else Content(keys)
                out.extend(content.wrap(width))
                continue
            left = Content.styled(str(keys), "bold").wrap(KEYS_WIDTH)
            right = (text or Content("")).wrap(width - KEYS_WIDTH)
            for i in range(max(len(left), len(right))):
                key_part = left[i] if i < len(left) else Content("")
                text_part = right[i] if i < len(right) else Content("")
                out.append(key_part.pad_right(KEYS_WIDTH - key_part.cell_length) + text_part)
        self._cache = (width, out)
        return out

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.lines(width))

    def render(self) -> Content:
        return Content("\n").join(self.lines(self.content_region.width or self.size.width))


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
                yield KeyTable(self.rows(), id="help-keys")
            yield Label("escape closes", classes="hint")

    def rows(self) -> list[Row]:
        groups: dict[str, list[Action]] = {}
        for action in self.actions:
            groups.setdefault(action.group, []).append(action)
        rows: list[Row] = []
        for group, actions in groups.items():
            rows.append(("group", Content.styled(group, "bold $accent"), None))
            rows.extend(("row", key_label(action), self._text(action)) for action in actions)
        rows.append(("group", Content.styled("Everywhere", "bold $accent"), None))
        rows.extend(("row", keys, Content(text)) for keys, text in BUILTIN_KEYS)
        if self.watch_mode:
            rows.append(("note", Content.styled(WATCH_NOTE, "$warning"), None))
        rows.append(("note", Content.styled(MOUSE_NOTE, "$foreground-muted"), None))
        return rows

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
