"""Access checks: the hosts answer over verified SSH (P01), the revision can be fetched
(P02), and no other deployment holds the portal (P15)."""

from __future__ import annotations

import json
import re
import time
import urllib.parse

from ..journal import Journal
from ..lockowner import LockHolder, held_lock, parse_owner, redis_key
from ..shell import q
from ..transport import HostKeyMismatch
from .context import Context
from .model import Outcome, check, errored, failed, passed, warned

_SHA = re.compile(r"^[0-9a-f]{7,40}$")


@check(
    "P01",
    "Hosts reachable over SSH, host key verified",
    "access",
    weight=8,
    critical=True,
    scope="host",
)
async def hosts_reachable(ctx: Context) -> list[Outcome]:
    threshold = "connects, host key verified"
    rows: list[Outcome] = []
    for name, exc in ctx.unreachable.items():
        what = "host key mismatch" if isinstance(exc, HostKeyMismatch) else "unreachable"
        rows.append(failed(f"{what}: {exc}", host=name, value=what, threshold=threshold))

    async def one(name: str) -> Outcome:
        host_config = ctx.host_config(name)
        result = await ctx.sh(name, "echo portal-ops-ok")
        if not result.ok or "portal-ops-ok" not in result.stdout:
            return failed(f"a test command failed: {result.tail(2)}", threshold=threshold)
        if host_config.transport == "local":
            return passed("local transport (no SSH)", value="local", threshold=threshold)
        where = host_config.address + (f":{host_config.port}" if host_config.port else "")
        if not host_config.verify_host_key:
            return warned(
                f"connected to {where}, but host key verification is off for this host",
                value="not verified",
                threshold=threshold,
            )
        return passed(
            f"connected to {where}, host key verified", value="verified", threshold=threshold
        )

    reachable = [n for n in ctx.host_names if n not in ctx.unreachable]
    rows += await ctx.each_host(one, reachable)
    order = {name: i for i, name in enumerate(ctx.host_names)}
    return sorted(rows, key=lambda o: order.get(o.host or "", 0))


def safe_url(ctx: Context, url: str) -> str:
    """A repository or Redis URL fit to show: any password in it is registered as a secret
    and replaced."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if parts.password:
        ctx.secret(parts.password)
        netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
        if parts.port:
            netloc += f":{parts.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url


@check("P02", "Revision exists and is fetchable", "access", weight=6, critical=True)
async def revision_fetchable(ctx: Context) -> list[Outcome]:
    repository = ctx.config.portal.repository
    revision = ctx.revision or ctx.config.portal.revision
    shown = safe_url(ctx, repository)
    threshold = "found in the repository"
    primary = ctx.primary()
    if primary is None:
        return [errored("no host to run git on")]
    env = "GIT_TERMINAL_PROMPT=0 "
    full_sha = bool(re.fullmatch(r"[0-9a-f]{40}", revision))
    if full_sha:
        # a commit that is not a branch tip: prove it by fetching exactly that object
        command = (
            'd=$(mktemp -d) && trap \'rm -rf "$d"\' EXIT && git init -q "$d" && '
            f'{env}git -C "$d" fetch -q --depth=1 {q(repository)} {q(revision)} && '
            'git -C "$d" rev-parse FETCH_HEAD'
        )
    elif _SHA.match(revision):
        command = f"{env}git ls-remote {q(repository)}"
    else:
        command = f"{env}git ls-remote --exit-code {q(repository)} {q(revision)}"

    async def one(name: str) -> Outcome:
        result = await ctx.sh(name, command)
        out = result.stdout.strip()
        if full_sha:
            if result.ok and out.startswith(revision):
                return passed(
                    f"commit {revision[:12]} fetched from {shown}",
                    value=revision[:12],
                    threshold=threshold,
                )
            return failed(
                f"commit {revision[:12]} cannot be fetched from {shown}:"
                f" {ctx.redact(result.tail(2))}",
                threshold=threshold,
            )
        if _SHA.match(revision) and not full_sha:
            if not result.ok:
                return failed(
                    f"cannot list {shown}: {ctx.redact(result.tail(2))}", threshold=threshold
                )
            if any(line.startswith(revision) for line in out.splitlines()):
                return passed(
                    f"commit {revision} is a ref tip in {shown}",
                    value=revision,
                    threshold=threshold,
                )
            return warned(
                f"commit {revision} is not a branch or tag tip in {shown}; give the full"
                " 40-character hash to have it fetched and proven",
                threshold=threshold,
            )
        if result.exit_status == 2:
            return failed(f"no branch or tag {revision!r} in {shown}", threshold=threshold)
        if not result.ok:
            return failed(
                f"cannot reach {shown}: {ctx.redact(result.tail(2))}", threshold=threshold
            )
        sha = out.split()[0] if out else ""
        return passed(f"{revision} is {sha[:12]} in {shown}", value=sha[:12], threshold=threshold)

    return await ctx.each_host(one, [primary])


@check(
    "P15",
    "No other deployment running or unfinished",
    "access",
    weight=8,
    critical=True,
    scope="host",
)
async def no_other_deployment(ctx: Context) -> list[Outcome]:
    threshold = "no lock but ours, nothing unfinished"

    async def one(name: str) -> Outcome:
        if name in ctx.locked:  # taken by this deployment moments ago, in its own phase 1
            return passed(
                "lock held by this deployment (taken in phase 1)", value="ours", threshold=threshold
            )
        layout = ctx.layout(name)
        result = await ctx.sh(name, layout.lock_read())
        text = result.stdout.strip()
        if not result.ok:
            return errored(f"cannot read the lock: {result.tail(2)}", threshold=threshold)
        if text == "ABSENT":
            return passed("no deploy lock", value="free", threshold=threshold)
        owner = parse_owner(text.splitlines())
        if ctx.deployment_id and owner.get("deployment_id") == ctx.deployment_id:
            return passed("lock held by this deployment", value="ours", threshold=threshold)
        shown = {k: v for k, v in owner.items() if k != "token"}
        holder = LockHolder(name, shown, ctx.config.lock.lease_seconds)
        return failed(
            f"deploy lock {holder.describe()} (portal-ops unlock clears a stale one)",
            value="held",
            threshold=threshold,
        )

    rows = await ctx.each_host(one)
    rows.append(await _journal_and_redis(ctx, threshold))
    return rows


async def _journal_and_redis(ctx: Context, threshold: str) -> Outcome:
    """Unfinished deployments of this portal in the journal, and the Redis lock.

    Only deployments that started before ours count: one that started after it is racing
    for the lock we hold and will be refused; it must not fail our validation.
    """
    started = time.perf_counter()
    journal = Journal(ctx.journal_path)
    try:
        ours = journal.get_deployment(ctx.deployment_id) if ctx.deployment_id else None
        cutoff = (ours or {}).get("started_at") or float("inf")
        others = [
            d
            for d in journal.unfinished(target=ctx.config.portal.name)
            if d["id"] != ctx.deployment_id
            and (d["started_at"] or 0) < cutoff
            and held_lock(journal, d["id"])  # refused in a race: it never changed a host
        ]
    finally:
        journal.close()
    problems = [
        f"deployment {d['id']} (started {time.strftime('%Y-%m-%d %H:%M', time.localtime(d['started_at'] or 0))}"
        f", pid {d.get('pid') or '?'}) is unfinished in the journal: resume or roll it back"
        for d in others
    ]
    note = ""
    url = ctx.config.redis.url
    if url:
        holder = await _redis_lock(ctx, url)
        if isinstance(holder, dict) and holder.get("deployment_id") != ctx.deployment_id:
            problems.append(
                f"the Redis lock is held for deployment {holder.get('deployment_id', '?')}"
                f" by {holder.get('operator', '?')}"
            )
        elif isinstance(holder, str):
            note = f" (Redis lock not read: {holder})"
    elapsed = (time.perf_counter() - started) * 1000
    if problems:
        return failed(
            "; ".join(problems),
            value=len(problems),
            unit="unfinished",
            threshold=threshold,
            duration_ms=elapsed,
        )
    return passed(
        "no unfinished deployment in the journal" + note,
        value=0,
        unit="unfinished",
        threshold=threshold,
        duration_ms=elapsed,
    )


async def _redis_lock(ctx: Context, url: str) -> dict[str, object] | str | None:
    """The Redis lock's holder, None when free, or why it could not be read."""
    import redis.asyncio as aredis

    safe_url(ctx, url)
    client = aredis.Redis.from_url(
        url, socket_timeout=ctx.vc.http_timeout, socket_connect_timeout=ctx.vc.http_timeout
    )
    try:
        raw = await client.get(redis_key(ctx.config))
    except Exception as exc:
        return ctx.redact(f"{type(exc).__name__}: {exc}")
    finally:
        await client.aclose()
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return data if isinstance(data, dict) else {"raw": str(data)}
    except ValueError:  # str when the URL asks for decode_responses
        head = raw[:100]
        return {"raw": head.decode(errors="replace") if isinstance(head, bytes) else head}
