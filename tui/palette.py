"""The command palette's entries: the actions of the room's mode, nothing else."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from .rooms.base import RoomApp

from .actions import Action


class ActionCommands(Provider):
    """The command palette's entries: the actions of this mode, nothing else."""

    def _actions(self) -> Iterable[Action]:
        app = cast("RoomApp", self.app)
        return app.available_actions

    def _title(self, action: Action) -> str:
        return f"{action.group.lower()}: {action.description}"

    async def discover(self) -> Hits:
        app = cast("RoomApp", self.app)
        for action in self._actions():
            yield DiscoveryHit(
                self._title(action), partial(app.run_action, action.action), help=action.help
            )

    async def search(self, query: str) -> Hits:
        app = cast("RoomApp", self.app)
        matcher = self.matcher(query)
        for action in self._actions():
            title = self._title(action)
            score = max(matcher.match(title), matcher.match(action.help) * 0.5)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(title),
                    partial(app.run_action, action.action),
                    help=action.help,
                )
