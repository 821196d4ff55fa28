"""The key footer, rebuilt only when the keys it shows change.

Textual's Footer recomposes (one widget per key, ~30 here) on every bindings update, and
moving the focus between panes is one: 40-60 ms of every pane key went there while the
footer showed the same keys, and opening a dialog rebuilt the covered footer twice (for
the dialog's keys, then the room's again). This one compares what it would show and
keeps its widgets when nothing differs, so it draws exactly what Textual's would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Unpack

from textual.widgets import Footer

from ._options import FooterOptions

if TYPE_CHECKING:
    from textual.screen import Screen

Shown = tuple[tuple[str, str, str, bool, str, str], ...]


class KeyFooter(Footer):
    """A Footer that skips recomposing when its keys, labels and states are unchanged."""

    def __init__(self, **kwargs: Unpack[FooterOptions]) -> None:
        super().__init__(**kwargs)
        self._shown: Shown | None = None

    def _keys(self, screen: Screen[object]) -> Shown:
        return tuple(
            (
                binding.key,
                binding.action,
                binding.description,
                enabled,
                tooltip,
                binding.group.description if binding.group else "",
            )
            for (_, binding, enabled, tooltip) in screen.active_bindings.values()
            if binding.show
        )

    def bindings_changed(self, screen: Screen[object]) -> None:
        if not screen.app.app_focus or not (self.is_attached and screen is self.screen):
            super().bindings_changed(screen)
            return
        if self.app.screen is not self.screen and self._bindings_ready:
            return  # covered by a dialog: what it shows meanwhile is not seen (nor kept)
        keys = self._keys(screen)
        if keys == self._shown and self._bindings_ready:
            return
        self._shown = keys
        super().bindings_changed(screen)
