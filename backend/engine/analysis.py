"""Batch analysis: after a batch switches and before the next one starts, judge the
batch's hosts on what users would get from them, not only on their health URL.

For ``[rollout] analysis_seconds`` the switched hosts are watched: their health URL and
the configured smoke pages (``[validation] smoke_pages``) requested from each host
directly (its ``base_url``). Any failure stops the rollout before the next batch; the
switched hosts are then rolled back by the failed phase. Each judgement is an event
(``step = "analysis"``) the control room shows.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import httpx

from ..events import Kind
from .traffic import health_url

if TYPE_CHECKING:
    from .run import Run


async def probe_host(run: Run, name: str, client: httpx.AsyncClient) -> list[str]:
    """Problems seen on one host right now: health URL and smoke pages, requested directly."""
    host = run.host_config(name)
    problems: list[str] = []
    url = health_url(run.config, host)
    targets: list[tuple[str, int, str | None]] = [(url, 200, None)] if url else []
    if host.base_url:
        for page in run.config.validation.smoke_pages:
            if page.method != "GET" or page.key_env:
                continue  # pages needing a token or a body are judged by phase 7
            full = page.path if "://" in page.path else host.base_url.rstrip("/") + page.path
            targets.append((full, page.status, page.text))
    for target, status, text in targets:
        try:
            response = await client.get(target)
        except httpx.HTTPError as exc:
            problems.append(f"{name}: {target} did not answer ({type(exc).__name__})")
            continue
        if response.status_code != status and not (status == 200 and response.is_success):
            problems.append(f"{name}: {target} answered {response.status_code}, expected {status}")
        elif text and text not in response.text:
            problems.append(f"{name}: {target} lacks {text!r}")
    return problems


async def analyse_batch(run: Run, batch: list[str], index: int, total: int) -> list[str]:
    """Hold ``analysis_seconds`` and judge ``batch``; the problems found (empty: go on)."""
    seconds = run.config.rollout.analysis_seconds
    if seconds <= 0 or not batch:
        return []
    run.note(f"analyse batch {index}/{total} for {seconds:g}s: health and smoke pages per host")
    if run.dry_run:
        return []
    interval = min(1.0, seconds / 3)
    deadline = time.monotonic() + seconds
    problems: list[str] = []
    rounds = 0
    async with httpx.AsyncClient(timeout=min(5.0, seconds), follow_redirects=False) as client:
        while True:
            rounds += 1
            found = await asyncio.gather(*(probe_host(run, n, client) for n in batch))
            problems = [p for host_problems in found for p in host_problems]
            run.emit(
                Kind.STEP_OUTPUT,
                host=None,
                step="analysis",
                stream="portal-ops",
                line=f"batch {index}/{total} round {rounds}: "
                + ("; ".join(problems) if problems else "healthy"),
                batch=batch,
                ok=not problems,
            )
            if problems or time.monotonic() >= deadline:
                return problems
            await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
