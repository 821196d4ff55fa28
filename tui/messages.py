"""Messages from the bridge and the engine worker to the app: plain data only.

Widgets never see backend objects; these carry the immutable view model of
``tui.state`` (which may be replaced by a newer one unseen) and log lines (which may not).
"""

from __future__ import annotations

from textual.message import Message

from .state import LogLine, RoomState


class RoomChanged(Message):
    """A new snapshot of the room. Only the newest pending one matters: it replaces older."""

    def __init__(self, state: RoomState) -> None:
        super().__init__()
        self.state = state

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RoomChanged)


class LogLines(Message):
    """Incident-log lines since the last batch, in order; never dropped."""

    def __init__(self, lines: tuple[LogLine, ...]) -> None:
        super().__init__()
        self.lines = lines


class FeedCaughtUp(Message):
    """The feed delivered its history and is live: the room shows the present."""


class FeedFailed(Message):
    """The feed stopped (journal unreadable, Redis gone for good): say so, keep the room."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class RunFinished(Message):
    """A deploy or rollback the room started has returned (or raised)."""

    def __init__(self, run: str, deployment_id: str | None, outcome: str, error: str = "") -> None:
        super().__init__()
        self.run = run
        self.deployment_id = deployment_id
        self.outcome = outcome
        self.error = error
