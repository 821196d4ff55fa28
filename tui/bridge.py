"""The bridge: a feed of events in, batched messages to the app out.

It runs as one long-lived worker of the App (never of a screen, so a modal or a screen
switch never stops it). Each event goes through the pure reducer at once; what the
screen sees is flushed on a timer: at most one ``RoomChanged`` (a snapshot, replaceable)
and one ``LogLines`` (never dropped) every ``flush_interval`` seconds. A terminal on a
slow link therefore gets a bounded number of repaints however fast events arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from textual.message import Message

from backend.feed import Feed

from .messages import FeedCaughtUp, FeedFailed, LogLines, RoomChanged
from .state import LogLine, RoomState, log_line, reduce

DEFAULT_FLUSH_INTERVAL = 0.2  # seconds between two repaints of the panes, at most
_YIELD_EVERY = 400  # events reduced before giving the event loop a turn (long replays)


class Bridge:
    """Feed -> reducer -> batched messages; ``state`` is always the newest view model."""

    def __init__(
        self,
        feed: Feed,
        post: Callable[[Message], object],
        state: RoomState | None = None,
        *,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        self.feed = feed
        self.post = post
        self.state = state or RoomState()
        self.flush_interval = flush_interval
        self.events_seen = 0
        self._pending: list[LogLine] = []
        self._posted: RoomState | None = None

    def apply(self, change: Callable[[RoomState], RoomState]) -> None:
        """Change the state from outside the feed (a flag listing): shown at the next flush."""
        self.state = change(self.state)

    @property
    def flushed(self) -> bool:
        """Everything reduced so far has been posted to the app."""
        return self.state is self._posted and not self._pending

    def flush(self) -> None:
        """Post what changed since the last flush, if anything."""
        if self.state is not self._posted:
            self._posted = self.state
            self.post(RoomChanged(self.state))
        if self._pending:
            lines, self._pending = tuple(self._pending), []
            self.post(LogLines(lines))

    async def run(self) -> None:
        """Consume the feed until cancelled; a failing feed is reported, not raised."""
        flusher = asyncio.create_task(self._flush_loop())
        announcer = asyncio.create_task(self._announce())
        try:
            async for batch in self.feed.batches():
                for n, event in enumerate(batch, 1):
                    line = log_line(event)
                    if event.data.get("dry_run") and event.deployment_id != self.state.pinned:
                        line = None  # a plan's probes are not news, and it "succeeds" as a plan
                    self.state = reduce(self.state, event, line)
                    if line is not None:
                        self._pending.append(line)
                    if n % _YIELD_EVERY == 0:
                        await asyncio.sleep(0)
                self.events_seen += len(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the room stays up and says the feed stopped
            self.flush()
            self.post(FeedFailed(f"{type(exc).__name__}: {exc}"))
        finally:
            for task in (flusher, announcer):
                task.cancel()
            with contextlib.suppress(Exception):
                await self.feed.aclose()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            self.flush()

    async def _announce(self) -> None:
        await self.feed.caught_up.wait()
        self.flush()
        self.post(FeedCaughtUp())
