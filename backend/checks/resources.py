"""Machine resources on every host: disk free on the deploy path, memory in use, load per
core; before the deployment (P06-P08) and again after it (Q17, Q18)."""

from __future__ import annotations

from ..script import SHOW
from ..shell import q
from .context import Context
from .model import Outcome, banded, check, errored
from .parsers import parse_df, parse_load, parse_meminfo


def existing_ancestor(path: str) -> str:
    """Shell that sets ``$p`` to ``path`` or its nearest existing parent (first deploy)."""
    return f'p={q(path)}; while [ ! -e "$p" ] && [ "$p" != / ]; do p=${{p%/*}}; p=${{p:-/}}; done; '  # the parent by the shell's own expansion: no dirname per level


async def disk_free(ctx: Context, name: str) -> Outcome:
    vc = ctx.vc
    path = ctx.deploy_path(name)
    threshold = f">= {vc.disk_free_warn_below:g} % free (fail < {vc.disk_free_fail_below:g} %)"
    result = await ctx.sh(name, existing_ancestor(path) + 'df -P "$p"')
    if not result.ok:
        return errored(f"df failed: {result.tail(2)}", threshold=threshold)
    usage = parse_df(result.stdout)
    status = banded(
        usage.free_percent, vc.disk_free_warn_below, vc.disk_free_fail_below, higher_is_worse=False
    )
    return Outcome(
        status,
        f"{usage.free_percent:g}% free on {usage.mount} ({usage.avail_kb / 1048576:.1f} GiB"
        f" of {usage.total_kb / 1048576:.1f} GiB available) for {path}",
        value=usage.free_percent,
        unit="% free",
        threshold=threshold,
        meta={"mount": usage.mount, "avail_kb": usage.avail_kb, "total_kb": usage.total_kb},
    )


async def memory_used(ctx: Context, name: str) -> Outcome:
    vc = ctx.vc
    threshold = f"< {vc.memory_warn_above:g} % used (fail > {vc.memory_fail_above:g} %)"
    # shown with the shell's own read (a third of a cat's cost on the host)
    result = await ctx.sh(name, f"{SHOW} < /proc/meminfo")
    if not result.ok:
        return errored(f"cannot read /proc/meminfo: {result.tail(1)}", threshold=threshold)
    used, available, total = parse_meminfo(result.stdout)
    status = banded(used, vc.memory_warn_above, vc.memory_fail_above)
    return Outcome(
        status,
        f"{used:g}% used ({available / 1048576:.1f} GiB of {total / 1048576:.1f} GiB available)",
        value=used,
        unit="% used",
        threshold=threshold,
        meta={"available_kb": available, "total_kb": total},
    )


async def load_per_core(ctx: Context, name: str) -> Outcome:
    vc = ctx.vc
    threshold = f"< {vc.load_warn_above:g} per core (fail > {vc.load_fail_above:g})"
    result = await ctx.sh(name, 'read -r l < /proc/loadavg && echo "$l" && nproc')
    if not result.ok:
        return errored(f"cannot read the load: {result.tail(1)}", threshold=threshold)
    load5, cores = parse_load(result.stdout)
    per_core = round(load5 / cores, 2)
    status = banded(per_core, vc.load_warn_above, vc.load_fail_above)
    return Outcome(
        status,
        f"5-minute load {load5:g} on {cores} core{'s' if cores > 1 else ''}",
        value=per_core,
        unit="per core",
        threshold=threshold,
        meta={"load5": load5, "cores": cores},
    )


@check("P06", "Disk free on the deploy path", "resources", weight=8, critical=True, scope="host")
async def pre_disk(ctx: Context) -> list[Outcome]:
    return await ctx.each_host(lambda name: disk_free(ctx, name))


@check("P07", "Memory use below threshold", "resources", weight=5, scope="host")
async def pre_memory(ctx: Context) -> list[Outcome]:
    return await ctx.each_host(lambda name: memory_used(ctx, name))


@check("P08", "Load per core below threshold", "resources", weight=3, scope="host")
async def pre_load(ctx: Context) -> list[Outcome]:
    return await ctx.each_host(lambda name: load_per_core(ctx, name))


@check("Q17", "Disk free still within threshold", "resources", weight=4, scope="host")
async def post_disk(ctx: Context) -> list[Outcome]:
    return await ctx.each_host(lambda name: disk_free(ctx, name))


@check("Q18", "Memory use still within threshold", "resources", weight=3, scope="host")
async def post_memory(ctx: Context) -> list[Outcome]:
    return await ctx.each_host(lambda name: memory_used(ctx, name))
