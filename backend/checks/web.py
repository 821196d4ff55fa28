"""The portal over HTTP after the switch: health per host (Q02) and through the public URL
(Q03), p95 latency (Q05), error rate (Q06) and smoke pages (Q07)."""

from __future__ import annotations

import asyncio
import math
import os
import time
import urllib.parse
from typing import TYPE_CHECKING

from ..health import health_url
from ..lazy import lazy_module
from .config import SmokePage
from .context import Context
from .model import Outcome, Status, banded, check, errored, failed, passed, skipped, warned

if TYPE_CHECKING:
    import httpx
else:  # loaded on first use: checks that make no request never pay for it
    httpx = lazy_module("httpx")

_OK_WORDS = {"ok", "pass", "passed", "up", "healthy", "green"}


def closed_as_reused() -> tuple[type[Exception], ...]:
    """A connection closed as it was used: FIN (no answer) or RST (reset reading or
    writing). A function, not a constant: naming httpx's classes loads httpx."""
    return (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


async def request(http: httpx.AsyncClient, method: str, url: str, **kw: object) -> httpx.Response:
    """One request as a browser makes it: a kept-alive connection that the server (or a
    load balancer's ``timeout http-keep-alive``) closed just as it was reused fails with
    no answer at all, or a reset; browsers send such a request again on a new connection,
    and so do we, once. A server that really drops requests fails the second time too."""
    try:
        return await http.request(method, url, **kw)  # type: ignore[arg-type]
    except closed_as_reused():
        return await http.request(method, url, **kw)  # type: ignore[arg-type]


def judge_health(url: str, response: httpx.Response) -> Outcome:
    """2xx is healthy, unless the body says otherwise: a spatie/laravel-health
    ``checkResults`` list with a failed check, or ``{"status": "fail"}``."""
    code = response.status_code
    threshold = "2xx, nothing failed"
    kw = {"value": code, "unit": "HTTP", "threshold": threshold}
    if not 200 <= code < 300:
        return failed(f"{url} answered {code}", **kw)
    try:
        data = response.json()
    except ValueError:
        return passed(f"{url} answered {code}", **kw)
    if isinstance(data, dict) and isinstance(data.get("checkResults"), list):
        bad = [
            r.get("name", "?")
            for r in data["checkResults"]
            if r.get("status") in ("failed", "crashed")
        ]
        warn = [r.get("name", "?") for r in data["checkResults"] if r.get("status") == "warning"]
        if bad:
            return failed(f"{url}: health checks failed: {', '.join(map(str, bad))}", **kw)
        if warn:
            return warned(f"{url}: health checks warn: {', '.join(map(str, warn))}", **kw)
        return passed(f"{url}: {len(data['checkResults'])} health checks ok", **kw)
    status = data.get("status") if isinstance(data, dict) else None
    if isinstance(status, str) and status.lower() not in _OK_WORDS:
        return failed(f"{url} says status {status!r}", **kw)
    return passed(f"{url} answered {code}", **kw)


async def get_health(ctx: Context, url: str) -> Outcome:
    try:
        response = await request(ctx.http, "GET", url)
    except httpx.HTTPError as exc:
        return failed(
            f"no answer from {url}: {exc or type(exc).__name__}", threshold="2xx, nothing failed"
        )
    return judge_health(url, response)


@check(
    "Q02", "Health endpoint healthy on every host", "http", weight=8, critical=True, scope="host"
)
async def host_health(ctx: Context) -> list[Outcome]:
    urls = {n: health_url(ctx.config, ctx.host_config(n)) for n in ctx.host_names}
    if not any(urls.values()):
        return [skipped("no health_url configured ([portal] or per host)")]

    async def one(name: str) -> Outcome:
        url = urls[name]
        if not url:
            return skipped("no health_url for this host")
        return await get_health(ctx, url)

    return await ctx.each_host(one, needs_ssh=False)


@check("Q03", "Health endpoint healthy through the public URL", "http", weight=6, critical=True)
async def public_health(ctx: Context) -> list[Outcome]:
    path = ctx.vc.public_health_path
    templates = [ctx.config.portal.health_url] + [h.health_url for h in ctx.config.hosts]
    template = next((t for t in templates if t), None)
    if path is None and template:
        path = urllib.parse.urlsplit(template).path or "/"
    if path is None:
        return [skipped("no public_health_path and no health_url to take its path from")]
    url = ctx.public(path)
    if url is None:
        return [skipped("no public_url configured")]
    started = time.perf_counter()
    outcome = await get_health(ctx, url)
    outcome.duration_ms = (time.perf_counter() - started) * 1000
    return [outcome]


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p95 of 20 samples is the 19th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def bands(ctx: Context, check_id: str, warn: float, fail: float) -> tuple[float, float, str]:
    """(warn, fail, note): the absolute lines, or, with a baseline measured before the switch
    in this deployment, ``baseline_factor x baseline`` where that is higher (the absolute
    lines are the floor), so a machine already loaded does not fail a healthy release."""
    vc = ctx.vc
    base = (ctx.baseline or {}).get(check_id) if vc.relative_to_baseline else None
    if base is None:
        return warn, fail, ""
    relative = vc.baseline_factor * base
    return (
        max(warn, relative),
        max(fail, relative),
        f"; baseline before the switch {base:g}, x{vc.baseline_factor:g}",
    )


def _sample_urls(ctx: Context, paths: list[str], count: int) -> list[str] | None:
    urls = [ctx.public(p) for p in paths]
    if not urls or any(u is None for u in urls):
        return None
    return [urls[i % len(urls)] or "" for i in range(count)]


@check("Q05", "p95 response time within target", "performance", weight=7)
async def latency(ctx: Context) -> list[Outcome]:
    vc = ctx.vc
    urls = _sample_urls(ctx, vc.latency_paths, vc.latency_samples)
    if urls is None:
        return [skipped("no public_url configured")]
    warn_ms, fail_ms, note_base = bands(ctx, "Q05", vc.latency_warn_ms, vc.latency_fail_ms)
    threshold = f"p95 <= {warn_ms:g} ms (fail > {fail_ms:g} ms){note_base}"
    timings: list[float] = []
    failures: list[str] = []
    started = time.perf_counter()
    for url in urls:  # sequential: one user's view, not a load test
        t0 = time.perf_counter()
        try:
            response = await request(ctx.http, "GET", url)
            await response.aread()
            timings.append((time.perf_counter() - t0) * 1000)
        except httpx.HTTPError as exc:
            failures.append(f"{url}: {exc or type(exc).__name__}")
    duration = (time.perf_counter() - started) * 1000
    if not timings:
        return [
            errored(
                f"no request answered: {failures[0]}", threshold=threshold, duration_ms=duration
            )
        ]
    p95 = round(percentile(timings, 95), 1)
    p50 = round(percentile(timings, 50), 1)
    status = banded(p95, warn_ms, fail_ms)
    note = f", {len(failures)} without answer" if failures else ""
    return [
        Outcome(
            status,
            f"p95 {p95:g} ms, p50 {p50:g} ms over {len(timings)} requests{note}",
            value=p95,
            unit="ms",
            threshold=threshold,
            meta={
                "p50_ms": p50,
                "max_ms": round(max(timings), 1),
                "samples": len(timings),
                "unanswered": failures[:5],
                "baseline_ms": (ctx.baseline or {}).get("Q05"),
            },
            duration_ms=duration,
        )
    ]


@check("Q06", "Error rate within target", "performance", weight=8, critical=True)
async def error_rate(ctx: Context) -> list[Outcome]:
    vc = ctx.vc
    urls = _sample_urls(ctx, vc.error_rate_paths, vc.error_rate_samples)
    if urls is None:
        return [skipped("no public_url configured")]
    warn_pct, fail_pct, note_base = bands(
        ctx, "Q06", vc.error_rate_warn_percent, vc.error_rate_fail_percent
    )
    threshold = f"<= {warn_pct:g} % 5xx (fail > {fail_pct:g} %){note_base}"
    gate = asyncio.Semaphore(vc.error_rate_concurrency)
    started = time.perf_counter()

    async def one(url: str) -> str | None:
        async with gate:
            try:
                response = await request(ctx.http, "GET", url)
            except httpx.HTTPError as exc:
                return f"{url}: {type(exc).__name__}"
        return f"{url}: {response.status_code}" if response.status_code >= 500 else None

    results = await asyncio.gather(*(one(u) for u in urls))
    errors = [r for r in results if r]
    rate = round(100.0 * len(errors) / len(urls), 2)
    status = banded(rate, warn_pct, fail_pct)
    examples = sorted(set(errors))[:5]
    return [
        Outcome(
            status,
            f"{len(errors)} of {len(urls)} requests failed ({rate:g}%)"
            + (f": {'; '.join(examples[:2])}" if examples else ""),
            value=rate,
            unit="% errors",
            threshold=threshold,
            meta={
                "requests": len(urls),
                "errors": len(errors),
                "examples": examples,
                "baseline_percent": (ctx.baseline or {}).get("Q06"),
            },
            duration_ms=(time.perf_counter() - started) * 1000,
        )
    ]


async def smoke(ctx: Context, page: SmokePage) -> tuple[Status, str]:
    url = ctx.public(page.path)
    if url is None:
        return Status.ERROR, f"{page.path}: no public_url to request it through"
    headers = {}
    if page.key_env:
        token = ctx.secret(os.environ.get(page.key_env))
        if not token:
            return Status.ERROR, f"{page.path}: environment variable {page.key_env} is not set"
        headers[page.header] = page.prefix + token
    try:
        response = await request(ctx.http, page.method, url, headers=headers)
    except httpx.HTTPError as exc:
        return Status.FAIL, f"{page.path}: no answer ({exc or type(exc).__name__})"
    if response.status_code != page.status:
        return Status.FAIL, f"{page.path}: {response.status_code}, expected {page.status}"
    if page.text and page.text not in response.text:
        return Status.FAIL, f"{page.path}: {page.text!r} not in the page"
    return Status.PASS, f"{page.path}: {response.status_code}"


@check("Q07", "Smoke pages answer as expected", "http", weight=6, critical=True)
async def smoke_pages(ctx: Context) -> list[Outcome]:
    pages = ctx.vc.smoke_pages
    if not pages:
        return [skipped("no smoke_pages configured")]
    started = time.perf_counter()
    results = await asyncio.gather(*(smoke(ctx, p) for p in pages))
    bad = [(s, m) for s, m in results if s is not Status.PASS]
    good = len(results) - len(bad)
    kw = {
        "value": f"{good}/{len(pages)}",
        "unit": "ok",
        "threshold": "status and text as set",
        "meta": {"pages": [m for _, m in results]},
        "duration_ms": (time.perf_counter() - started) * 1000,
    }
    if any(s is Status.FAIL for s, _ in bad):
        return [failed("; ".join(m for s, m in bad if s is Status.FAIL), **kw)]
    if bad:
        return [errored("; ".join(m for _, m in bad), **kw)]
    return [passed(f"all {len(pages)} pages ok: " + ", ".join(p.path for p in pages), **kw)]
