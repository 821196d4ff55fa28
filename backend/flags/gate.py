"""Health gates for the gradual rollout: async callables answering (healthy?, why).

A gate is any ``async () -> (bool, str)``. The rollout calls it before it starts, then
repeatedly while each step is held; a False (or an exception, or a timeout) stops the
rollout and steps the flag back. The engine plugs in the post-deployment checks and
the monitor's rules; the CLI uses :func:`http_gate` over the portal's health URLs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import httpx

Gate = Callable[[], Awaitable[tuple[bool, str]]]


def http_gate(urls: Sequence[str], timeout: float = 5.0, max_latency: float | None = None) -> Gate:
    """Healthy when every URL answers 2xx/3xx within ``timeout`` (and ``max_latency`` s)."""
    if not urls:
        raise ValueError("http_gate needs at least one URL")
    targets = list(urls)

    async def gate() -> tuple[bool, str]:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            results = await asyncio.gather(*(_probe(client, u, max_latency) for u in targets))
        bad = [why for ok, why in results if not ok]
        if bad:
            return False, "; ".join(bad)
        return True, f"{len(targets)} health URL(s) OK"

    return gate


async def _probe(
    client: httpx.AsyncClient, url: str, max_latency: float | None
) -> tuple[bool, str]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        return False, f"{url}: {type(exc).__name__}"
    elapsed = loop.time() - started
    if not 200 <= response.status_code < 400:
        return False, f"{url}: HTTP {response.status_code}"
    if max_latency is not None and elapsed > max_latency:
        return False, f"{url}: {elapsed * 1000:.0f} ms > {max_latency * 1000:.0f} ms"
    return True, f"{url}: HTTP {response.status_code}"


def all_of(*gates: Gate) -> Gate:
    """Healthy only when every gate is; the reasons of the failing ones are joined."""

    async def gate() -> tuple[bool, str]:
        results = await asyncio.gather(*(g() for g in gates), return_exceptions=True)
        bad: list[str] = []
        for r in results:
            if isinstance(r, BaseException):
                bad.append(f"gate raised {type(r).__name__}: {r}")
            elif not r[0]:
                bad.append(r[1])
        return (False, "; ".join(bad)) if bad else (True, "all gates OK")

    return gate


async def no_gate() -> tuple[bool, str]:
    """For an explicit ``--no-gate``: the steps are only held, never checked."""
    return True, "no health gate"
