"""The right release is live: ``current`` on every host (Q01), the version endpoint
(Q04), the build's assets served (Q08), no migration left pending (Q09)."""

from __future__ import annotations

import asyncio
import posixpath
import re
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..config import Config, HostConfig
from ..hostpaths import UNFINISHED_MARKER
from ..lazy import lazy_module
from ..recipes import command as recipe_command
from ..recipes import parse_pending
from ..shell import q
from ..transport import TransportError
from .config import CommandProbe
from .context import NO_DIR_EXIT, Context
from .model import Outcome, Status, answered, check, errored, failed, passed, skipped, warned
from .parsers import manifest_paths

if TYPE_CHECKING:
    import httpx
else:  # loaded on first use: checks that make no request never pay for it
    httpx = lazy_module("httpx")

_HEX = re.compile(r"[0-9a-f]{7,40}")


@check(
    "Q01",
    "current points to the new release on every host",
    "release",
    weight=6,
    critical=True,
    scope="host",
)
async def current_release(ctx: Context) -> list[Outcome]:
    expected = ctx.release
    threshold = f"current -> releases/{expected}" if expected else "the same release everywhere"

    async def one(name: str) -> Outcome:
        layout = ctx.layout(name)
        current = layout.current
        marker = posixpath.join(current, UNFINISHED_MARKER)
        # the release the link leads to, by the shell's own -ef (readlink only for a link
        # that names none): "releases/<id>", or an empty line where there is no link
        read = f'{layout.read_current("c")}; echo "${{c:+releases/$c}}"'
        result = await ctx.sh(name, f"{read}; [ -e {q(marker)} ] && echo UNFINISHED; true")
        lines = result.stdout.strip().splitlines()
        if not lines or not lines[0].strip():
            return failed(f"{current} is not a symlink", threshold=threshold)
        release = posixpath.basename(lines[0].strip().rstrip("/"))
        meta = {"target": lines[0].strip()}
        if "UNFINISHED" in lines[1:]:
            return failed(
                f"current -> {release}, which is marked unfinished",
                value=release,
                threshold=threshold,
                meta=meta,
            )
        if expected and release != expected:
            return failed(
                f"current -> {release}, expected {expected}",
                value=release,
                threshold=threshold,
                meta=meta,
            )
        return passed(f"current -> {release}", value=release, threshold=threshold, meta=meta)

    rows = await ctx.each_host(one)
    if expected is None:
        seen = Counter(r.value for r in rows if r.status is Status.PASS)
        if len(seen) > 1:
            majority = seen.most_common(1)[0][0]
            for row in rows:
                if row.status is Status.PASS and row.value != majority:
                    row.status = Status.FAIL
                    row.message = f"current -> {row.value}, most hosts run {majority}"
    return rows


def _strings(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [s for v in data.values() for s in _strings(v)]
    if isinstance(data, list):
        return [s for v in data for s in _strings(v)]
    return [str(data)] if data is not None else []


def lookup(data: Any, path: str) -> Any:
    """The value at dotted ``path`` in a JSON document (a number indexes a list); KeyError
    naming the first missing part and what was there instead."""
    node = data
    for depth, part in enumerate(path.split(".")):
        where = ".".join(path.split(".")[:depth]) or "the document"
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            there = (
                "keys " + ", ".join(sorted(map(str, node))[:8])
                if isinstance(node, dict)
                else f"a {type(node).__name__}"
            )
            raise KeyError(f"{part!r} is not in {where} ({there})")
    return node


def version_urls(
    config: Config, hosts: list[HostConfig], template: str
) -> dict[str | None, str] | None:
    """Where Q04 asks: per host when the URL names ``{address}``/``{name}``, or is a path
    and the hosts have a ``base_url``; else once (a path through the public URL). None:
    nowhere (a path and no public URL)."""
    if "{address}" in template or "{name}" in template:
        return {h.name: template.format(address=h.address, name=h.name) for h in hosts}
    if template.startswith("/") and hosts and all(h.base_url for h in hosts):
        return {h.name: (h.base_url or "").rstrip("/") + template for h in hosts}
    if template.startswith(("http://", "https://")):
        return {None: template}
    base = config.portal.public_url
    return {None: base.rstrip("/") + "/" + template.lstrip("/")} if base else None


async def version_key_problems(config: Config, hosts: list[HostConfig]) -> list[str]:
    """Phase 1: a ``version_key`` the live release's version document does not hold is a
    config error found before anything changes. An endpoint that does not answer JSON yet
    (a first deployment, or a release that adds it) is left to Q04 after the switch."""
    key, template = config.validation.version_key, config.portal.version_url
    if not key or not template or "Q04" in config.validation.disabled:
        return []
    urls = version_urls(config, hosts, template) or {}
    problems: list[str] = []
    async with httpx.AsyncClient(timeout=config.validation.http_timeout) as http:
        for url in dict.fromkeys(urls.values()):
            try:
                response = await http.get(url)
                data = response.json() if response.is_success else None
            except (httpx.HTTPError, ValueError):
                continue
            if data is None:
                continue
            try:
                lookup(data, key)
            except KeyError as exc:
                problems.append(f"[validation] version_key {key}: {url}: {exc.args[0]}")
    return problems


def reports_expected(found: list[str], expected: list[str]) -> bool:
    """A reported token matches an expected revision/release; a short hash matches its
    full form either way round (7 characters at least)."""
    for token in found:
        for want in expected:
            if token == want:
                return True
            short, long = sorted((token, want), key=len)
            if (
                len(short) >= 7
                and long.startswith(short)
                and all(c in "0123456789abcdef" for c in long)
            ):
                return True
    return False


async def release_commit(ctx: Context) -> str | None:
    """The commit in the release's REVISION file, when the expected revision is a branch
    or tag name (what the version endpoint reports is usually the commit)."""
    if not ctx.release or (ctx.revision and _HEX.fullmatch(ctx.revision)):
        return None
    for name in ctx.host_names:
        if name in ctx.unreachable:
            continue
        path = posixpath.join(ctx.layout(name).release(ctx.release), "REVISION")
        try:
            result = await ctx.sh(name, f"cat -- {q(path)} 2>/dev/null")
        except TransportError:
            continue
        commit = result.stdout.strip()
        if result.ok and _HEX.fullmatch(commit):
            return commit
        return None
    return None


@check("Q04", "Version endpoint reports the new revision", "release", weight=6, critical=True)
async def version_endpoint(ctx: Context) -> list[Outcome]:
    template = ctx.config.portal.version_url
    if not template:
        return [skipped("no version_url configured in [portal]")]
    expected = [v for v in (ctx.revision, ctx.release) if v]
    if not expected:
        return [skipped("no expected revision or release known (give a deployment id)")]
    commit = await release_commit(ctx)
    if commit and commit not in expected:
        expected.insert(0, commit)
    threshold = "reports " + " or ".join(expected)

    async def fetch(url: str) -> Outcome:
        try:
            response = await ctx.http.get(url)
        except httpx.HTTPError as exc:
            return failed(f"no answer from {url}: {exc or type(exc).__name__}", threshold=threshold)
        if not 200 <= response.status_code < 300:
            return answered(failed, url, response.status_code, threshold)
        key = ctx.vc.version_key
        if key:
            try:
                value = lookup(response.json(), key)
            except ValueError:
                return failed(f"{url} did not answer JSON (version_key {key})", threshold=threshold)
            except KeyError as exc:
                return failed(
                    f"{url}: version_key {key}: {exc.args[0]}", value=None, threshold=threshold
                )
            shown = str(value)[:80]
            if reports_expected(_strings(value), expected):
                return passed(f"{url} reports {key} = {shown}", value=shown, threshold=threshold)
            return failed(
                f"{url} reports {key} = {shown!r}, expected {' or '.join(expected)}",
                value=shown,
                threshold=threshold,
            )
        try:
            data = response.json()
            found = _strings(data)
            shown = str(
                next(
                    (
                        data.get(k)
                        for k in ("revision", "commit", "sha", "release", "version")
                        if isinstance(data, dict) and data.get(k)
                    ),
                    response.text[:40],
                )
            )
        except ValueError:
            found = response.text.split()
            shown = response.text.strip()[:40]
        if reports_expected(found, expected):
            return passed(f"{url} reports {shown}", value=shown, threshold=threshold)
        return failed(
            f"{url} reports {shown!r}, expected {' or '.join(expected)}",
            value=shown,
            threshold=threshold,
        )

    urls = version_urls(ctx.config, [ctx.host_config(n) for n in ctx.host_names], template)
    if urls is None:
        return [
            errored(
                f"version_url {template} is a path: needs [portal] public_url or a base_url per host"
            )
        ]
    if None not in urls:

        async def one(name: str) -> Outcome:
            return await fetch(urls[name])

        return await ctx.each_host(one, needs_ssh=False)
    started = time.perf_counter()
    outcome = await fetch(urls[None])
    outcome.duration_ms = (time.perf_counter() - started) * 1000
    return [outcome]


@check("Q08", "Built assets from the release's manifest are served", "release", weight=4)
async def assets(ctx: Context) -> list[Outcome]:
    vc = ctx.vc
    if not vc.asset_manifest:
        return [skipped("no asset_manifest configured (e.g. public/build/manifest.json)")]
    if not ctx.config.portal.public_url:
        return [skipped("no public_url configured to request the assets through")]
    reachable = [n for n in ctx.host_names if n not in ctx.unreachable]
    if not reachable:
        return [errored("no reachable host to read the manifest from")]
    source = reachable[0]
    path = posixpath.join(ctx.release_dir(source), vc.asset_manifest)
    started = time.perf_counter()
    result = await ctx.sh(source, f"cat -- {q(path)}")
    if not result.ok:
        return [errored(f"cannot read the manifest {path} on {source}: {result.tail(1)}")]
    try:
        paths = manifest_paths(result.stdout, vc.asset_base)
    except ValueError as exc:
        return [errored(f"{path}: {exc}")]
    if not paths:
        return [warned(f"the manifest {path} lists no assets")]
    shown_paths = paths[: vc.asset_limit]
    gate = asyncio.Semaphore(5)

    async def fetch(asset: str) -> str | None:
        url = ctx.public(asset)
        assert url is not None
        async with gate:
            try:
                response = await ctx.http.get(url)
            except httpx.HTTPError as exc:
                return f"{asset}: {exc or type(exc).__name__}"
        return None if 200 <= response.status_code < 300 else f"{asset}: {response.status_code}"

    problems = [p for p in await asyncio.gather(*(fetch(a) for a in shown_paths)) if p]
    ok = len(shown_paths) - len(problems)
    kw = {
        "value": f"{ok}/{len(shown_paths)}",
        "unit": "served",
        "threshold": "every asset 2xx",
        "meta": {"manifest": path, "assets": len(paths), "failed": problems[:10]},
        "duration_ms": (time.perf_counter() - started) * 1000,
    }
    more = f" (first {len(shown_paths)} of {len(paths)})" if len(paths) > len(shown_paths) else ""
    if problems:
        return [failed(f"{len(problems)} asset(s) not served: {'; '.join(problems[:3])}", **kw)]
    return [passed(f"all {len(shown_paths)} assets served{more}", **kw)]


def migrate_probe(ctx: Context) -> CommandProbe | None:
    if ctx.vc.migrate_status is not None:
        return ctx.vc.migrate_status
    command = recipe_command(ctx.config, "migrate_status")
    return CommandProbe(command=command) if command else None


@check("Q09", "No pending migrations", "database", weight=6, critical=True)
async def pending_migrations(ctx: Context) -> list[Outcome]:
    probe = migrate_probe(ctx)
    if probe is None:
        return [skipped("no migrate_status command ([commands] or [validation] migrate_status)")]
    threshold = "0 pending"

    async def one(name: str) -> Outcome:
        result = await ctx.sh(name, ctx.probe_command(name, probe))
        if result.exit_status == NO_DIR_EXIT and "portal-ops: no directory" in result.stderr:
            return errored(result.stderr.strip().removeprefix("portal-ops: "), threshold=threshold)
        if not result.ok:
            return errored(
                f"`{probe.command}` exited {result.exit_status}: {ctx.redact(result.tail(2))}",
                threshold=threshold,
            )
        pending = parse_pending(result.stdout)
        if pending is None:
            return errored(
                f"`{probe.command}` printed nothing known (PENDING=<n>, Laravel's"
                " Ran/Pending rows or Django's [X]/[ ])",
                threshold=threshold,
            )
        if pending:
            return failed(
                f"{pending} migration(s) pending",
                value=pending,
                unit="pending",
                threshold=threshold,
            )
        return passed("no migration pending", value=0, unit="pending", threshold=threshold)

    return await ctx.each_host(one, ctx.select(probe.on or "primary", probe.roles))
