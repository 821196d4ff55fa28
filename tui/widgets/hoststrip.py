"""Which release each host serves, in one line: for screens too small for the hosts pane.

``20250801020000: web-1 web-2 switching │ 20250731161500: web-3``. Hosts are grouped by
the release they serve (the most hosts first); a host's state is named unless it is
plainly serving (``live``). Shown under the header whenever the hosts pane is hidden
(themes/control_room.tcss), so the answer to "what runs where" never leaves the screen.
"""

from __future__ import annotations

from typing import Unpack

from textual.content import Content
from textual.widgets import Static

from ..state import HostView, RoomState
from . import _format as fmt
from ._options import WidgetOptions

_QUIET_STATES = {"live", "pending", ""}
_BAD_STATES = {"failed", "unhealthy", "error", "down"}


def _host(host: HostView) -> list[tuple[str, str] | str]:
    parts: list[tuple[str, str] | str] = [host.name]
    if host.state not in _QUIET_STATES:
        style = "bold $error" if host.state in _BAD_STATES else "$primary"
        parts += [" ", (host.state.replace("_", " "), style)]
    return parts


def host_strip(state: RoomState) -> Content:
    if state.loading:  # the config names the hosts: not known yet, not "none"
        return Content.styled(" hosts: loading configuration…", "$foreground-muted")
    if not state.hosts:
        return Content.styled(" hosts: none configured", "$foreground-muted")
    parts: list[tuple[str, str] | str] = [(" serving ", "$foreground-muted")]
    for i, (release, hosts) in enumerate(state.releases):
        if i:
            parts.append(("  │  ", "$foreground-muted"))
        parts += [(release or "release unknown", "bold"), ": "]
        states = {h.state for h in hosts}
        if len(hosts) > 1 and len(states) == 1:  # one state for all: said once
            parts.append(" ".join(h.name for h in hosts))
            parts += _host(HostView("", state=states.pop()))[1:]
            continue
        for j, host in enumerate(hosts):
            if j:
                parts.append(" ")
            parts += _host(host)
    return Content.assemble(*parts)


class HostStrip(Static):
    """One line (two if it must wrap) naming the release on every host."""

    DEFAULT_CSS = """
    HostStrip {
        height: auto;
        max-height: 2;
    }
    """

    def __init__(self, **kwargs: Unpack[WidgetOptions]) -> None:
        super().__init__(**kwargs)
        self._shown: Content | None = None

    def show(self, state: RoomState) -> None:
        content = host_strip(state)
        if not fmt.same(self._shown, content):
            self._shown = content
            self.update(content)
