"""The checks' commands on one host as one script: a check asks for one command, and every
other check starting at the same moment asks for its own; they go to the host together
(side by side, backend/script.py :func:`compose_parallel`) over one exec channel instead of
one each. Each check still gets its own result: exit status, stdout, stderr."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from ..script import ScriptParser, Step, compose_parallel, new_nonce
from ..transport import CommandResult, Host

SETTLE_ROUNDS = 3  # event-loop turns without a new command before the batch goes out
MAX_ROUNDS = 200


class HostBatcher:
    """Collects the read-only commands asked for on one host in one moment."""

    def __init__(self, host: Host, gate: asyncio.Semaphore | None = None) -> None:
        self.host = host
        self.gate = gate
        self.queue: list[tuple[str, float, asyncio.Future[CommandResult]]] = []
        self.sender: asyncio.Task[None] | None = None

    async def run(self, command: str, timeout: float) -> CommandResult:
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self.queue.append((command, timeout, future))
        if self.sender is None:
            self.sender = asyncio.create_task(self._send())
        return await future

    async def _send(self) -> None:
        seen, quiet = -1, 0
        for _ in range(MAX_ROUNDS):  # let every check starting now ask for its command
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self.queue) == seen else 0
            seen = len(self.queue)
            if quiet >= SETTLE_ROUNDS:
                break
        batch, self.queue, self.sender = self.queue, [], None
        live = [(c, t, f) for c, t, f in batch if not f.done()]
        if not live:
            return
        try:
            if self.gate is not None:
                async with self.gate:
                    results = await self._run(live)
            else:
                results = await self._run(live)
        except Exception as exc:  # the link, a timeout: every check of the batch sees it
            for _, _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), result in zip(live, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _run(
        self, live: list[tuple[str, float, asyncio.Future[CommandResult]]]
    ) -> list[CommandResult]:
        if len(live) == 1:
            command, timeout, _ = live[0]
            return [await self.host.run(command, timeout=timeout, retry_safe=True)]
        steps = [
            Step(f"check-{i}", c, readonly=True, may_fail=True) for i, (c, _, _) in enumerate(live)
        ]
        nonce = new_nonce()
        parser = ScriptParser(steps, nonce, _nothing, _nothing, _nothing)
        whole = await self.host.run(
            compose_parallel(steps, nonce),
            timeout=max(t for _, t, _ in live),
            on_line=parser.feed,
            retry_safe=True,
        )
        parser.close()
        failed = CommandResult(
            self.host.name, "", whole.exit_status or 255, "", whole.stderr, whole.seconds
        )
        return [
            parser.result(self.host.name, i) or replace(failed, command=c)
            for i, (c, _, _) in enumerate(live)
        ]


def _nothing(*_: object) -> None:
    return None
