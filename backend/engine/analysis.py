"""Phase 6's batches: switch a batch, stop spreading when a host fails, judge the batch on
what users get before the next one starts.

Stop spreading: the first host of a batch that fails its switch stops the batch's switches
not yet started. The hosts lost in phase 4 (code) and phase 6 together are counted against
``[rollout] max_fail_percentage``: over it, the phase fails (the switched hosts roll back);
within it, the failed hosts go back to their previous release, leave the rollout, and the
batch goes on.

Batch analysis: after a batch switches and before the next one starts, judge the batch's
hosts on what users would get from them, not only on their health URL.

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

from ..events import Kind, Severity
from .run import PhaseFailed
from .traffic import health_url

if TYPE_CHECKING:
    from .deploy import Deployment
    from .run import Run


async def switch_batches(run: Deployment, groups: list[list[str]]) -> None:
    """Switch ``groups`` one batch after the other, each judged before the next starts;
    raises PhaseFailed when a batch must not spread further."""
    for index, names in enumerate(groups, 1):
        label = f"batch {index}/{len(groups)}"
        run.note(f"{label}: {', '.join(names)}")
        pending = list(names)
        while pending:
            failed, skipped = await switch_until_failure(run, pending)
            if failed:
                await tolerate_or_stop(run, label, failed, skipped)
            pending = skipped
        live = [n for n in names if n in run.active]
        problems = await analyse_batch(run, live, index, len(groups))
        if problems:
            raise PhaseFailed(f"{label} failed its analysis: " + "; ".join(problems), live)


async def switch_until_failure(
    run: Deployment, names: list[str]
) -> tuple[dict[str, str], list[str]]:
    """Switch ``names`` (``[rollout] concurrency`` at a time) until one fails: the switches
    not started by then are skipped. Returns (failed host -> why, skipped hosts)."""
    stop = asyncio.Event()
    skipped: list[str] = []

    async def guarded(name: str) -> None:
        if stop.is_set():
            skipped.append(name)
            return
        try:
            await run.switch_host(name)
        except BaseException:
            stop.set()
            raise

    errors = await run.on_hosts(names, guarded)
    failed = {n: str(e) for n, e in errors.items() if e}
    return failed, [n for n in names if n in skipped]


async def tolerate_or_stop(
    run: Deployment, label: str, failed: dict[str, str], skipped: list[str]
) -> None:
    """Count ``failed`` with the hosts lost in phase 4; over ``max_fail_percentage`` (or with
    nothing to go back to) raise PhaseFailed, else put them back on their previous release."""
    run.failed_hosts.update(failed)
    limit = run.config.rollout.max_fail_percentage
    percent = 100.0 * len(run.failed_hosts) / len(run.config.hosts)
    first = [n for n in failed if not run.previous.get(n)]
    left = [n for n in run.active if n not in failed]
    if percent > limit or first or not left:
        why = (
            f"{percent:.0f}% of hosts failed in code and switch (max_fail_percentage {limit:g})"
            if percent > limit
            else "no earlier release to go back to"
            if first
            else "no host left"
        )
        raise PhaseFailed(
            f"{label} failed on {', '.join(failed)}: {'; '.join(failed.values())}; {why}."
            f" Stopped: not switched: {', '.join(skipped) or 'none'}."
            f" Hosts already switched: {', '.join(run.switched) or 'none'}",
            list(failed),
        )
    for name, why in failed.items():
        previous = run.previous[name]
        assert previous is not None
        try:
            await run.cut_over(name, previous, before=run.release_id, strict=False, retry=True)
        except Exception as exc:
            raise PhaseFailed(
                f"{label}: {name} failed ({why}) and could not go back to {previous}: {exc}",
                [name],
            ) from None
        if name in run.switched:
            run.switched.remove(name)
        run.active.remove(name)
        run.set_host_state(name, "failed", release=previous, error=why)
    run.incident(
        Severity.WARNING,
        f"{label}: switch failed on {', '.join(failed)}; back on their previous release,"
        f" continuing without them ({percent:.0f}% of hosts failed in code and switch,"
        f" max_fail_percentage {limit:g})",
    )


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
