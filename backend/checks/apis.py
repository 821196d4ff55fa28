"""External API keys (P14): one authenticated request per configured probe, with the key
from the environment. 2xx proves the key, 401/403 disproves it; the key is never shown."""

from __future__ import annotations

import asyncio
import os
import time
import urllib.parse
from typing import TYPE_CHECKING

from ..lazy import lazy_module
from .config import ApiProbe
from .context import Context
from .model import Outcome, Status, check, skipped, worst

if TYPE_CHECKING:
    import httpx
else:  # loaded on first use: checks that make no request never pay for it
    httpx = lazy_module("httpx")


async def probe_key(ctx: Context, probe: ApiProbe) -> tuple[Status, str]:
    key = ctx.secret(os.environ.get(probe.key_env))
    if not key:
        return Status.ERROR, f"{probe.name}: environment variable {probe.key_env} is not set"
    url = probe.url.replace("{key}", urllib.parse.quote(key, safe=""))
    headers = {}
    if probe.header and "{key}" not in probe.url:
        headers[probe.header] = probe.prefix + key
    shown = probe.url  # the template, never the filled-in URL
    try:
        response = await ctx.http.request(probe.method, url, headers=headers)
    except httpx.HTTPError as exc:
        text = ctx.redact(str(exc)) or type(exc).__name__
        return Status.ERROR, f"{probe.name}: no answer from {shown}: {text}"
    code = response.status_code
    if 200 <= code < 300:
        return Status.PASS, f"{probe.name}: key accepted ({code})"
    if code in (401, 403):
        return Status.FAIL, f"{probe.name}: key rejected ({code}) by {shown}"
    if code >= 500:
        return Status.WARN, f"{probe.name}: {shown} answered {code}; key not proven"
    return Status.ERROR, f"{probe.name}: {shown} answered {code}; check the probe's URL"


@check("P14", "External API keys valid", "external", weight=7)
async def api_keys(ctx: Context) -> list[Outcome]:
    probes = ctx.vc.api_probes
    if not probes:
        return [skipped("no api_probes configured")]
    started = time.perf_counter()
    results = await asyncio.gather(*(probe_key(ctx, p) for p in probes))
    status = worst(s for s, _ in results)
    good = sum(s is Status.PASS for s, _ in results)
    shown = (
        [m for s, m in results if s is status]
        if status is not Status.PASS
        else [m for _, m in results]
    )
    return [
        Outcome(
            status if status is not Status.SKIPPED else Status.ERROR,
            "; ".join(shown),
            value=f"{good}/{len(probes)}",
            unit="valid",
            threshold="2xx for every key",
            meta={"probes": {p.name: str(s) for p, (s, _) in zip(probes, results, strict=True)}},
            duration_ms=(time.perf_counter() - started) * 1000,
        )
    ]
