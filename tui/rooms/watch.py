"""``portal-ops watch``: the read-only room, and the feed it follows (the journal on this
machine, else the Redis stream)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual.binding import BindingType

from backend.feed import Feed, JournalFeed, RedisFeed, stream_key
from backend.journal import Journal

from ..actions import DANGEROUS_KEYS, available, bindings
from ..widgets.header import DeployHeader
from .base import RoomApp

if TYPE_CHECKING:
    from backend.config import Config


class WatchRoom(RoomApp):
    """``portal-ops watch``: read-only. Dangerous actions are not bound at all; their keys
    flash the read-only badge and say so, rather than doing nothing silently."""

    WATCH = True
    BINDINGS: ClassVar[list[BindingType]] = bindings(available(watch=True))
    FLASH_SECONDS = 1.5

    def __init__(
        self, config: Config | None = None, *, follow: str = "auto", **options: Any
    ) -> None:
        super().__init__(config, **options)
        self.follow = follow  # --source: where the feed is taken from once the config is loaded

    def _wire(self, config: Config) -> None:
        """Loaded after the first frame: the journal and the feed (journal or Redis) now. An
        unknown deployment id or a Redis source without a URL is a ValueError: the room
        closes and the command prints it, as before the room opened."""
        if self._feed is not None:
            return
        if self.journal is None:
            from backend.paths import state_dir

            self.journal = Journal(state_dir(config.state.dir) / "journal.db")
        self._feed, name = watch_feed(config, self.journal, self.deployment_id, self.follow)
        self.source = name
        self.room.set_source(name)

    def on_key(self, event: Any) -> None:
        action = DANGEROUS_KEYS.get(event.key)
        if action is None or not getattr(self.screen, "DRAWS_STATE", False):
            return
        event.stop()
        self.notify(
            f"read-only: {action.description.lower()} is not available in watch mode",
            severity="warning",
            timeout=3,
        )
        header = self.room.query_one(DeployHeader)
        header.add_class("-flash")
        self.set_timer(self.FLASH_SECONDS, lambda: header.remove_class("-flash"))


def watch_feed(
    config: Config | None,
    journal: Journal | None,
    deployment_id: str | None,
    source: str = "auto",
) -> tuple[Feed, str]:
    """The watcher's feed and its name: the journal on this machine, else the Redis stream.

    ``auto`` prefers the journal when it holds the deployment (or a running one), because
    it is complete; Redis when configured and the journal does not know the deployment.
    """
    redis_url = config.redis.url if config is not None else None
    if source == "auto":
        local = journal is not None and (
            (deployment_id and journal.get_deployment(deployment_id) is not None)
            or (not deployment_id and (journal.latest_deployment() or not redis_url))
        )
        source = "journal" if local or not redis_url else "redis"
    if source == "redis":
        if not redis_url:
            raise ValueError("--source redis needs [redis] url in the config")
        prefix = config.redis.prefix if config is not None else "portal-ops"
        return RedisFeed(redis_url, deployment_id, stream=stream_key(prefix)), "redis"
    if journal is None:
        raise ValueError("no journal to follow")
    if deployment_id and journal.get_deployment(deployment_id) is None:
        recent = ", ".join(r["id"] for r in journal.list_deployments(limit=5)) or "none"
        raise ValueError(f"unknown deployment id {deployment_id!r} (recent: {recent})")
    return JournalFeed(journal, deployment_id), "journal"
