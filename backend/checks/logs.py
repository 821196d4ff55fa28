"""New errors in the app log since the switch (Q14), counted per host from the log's own
timestamps, so errors written before the switch never count against the new release."""

from __future__ import annotations

import posixpath
import time
from datetime import tzinfo

from ..shell import q
from .context import Context
from .model import Outcome, banded, check, errored, skipped
from .parsers import count_log_errors

_FILES = "PORTAL_OPS_FILES="


def log_zone(name: str) -> tzinfo | None:
    if name == "local":
        return None
    from zoneinfo import ZoneInfo  # 0.8 MB, for a log whose zone is named only

    return ZoneInfo(name)


@check("Q14", "No new errors in the app log since the switch", "logs", weight=5, scope="host")
async def new_log_errors(ctx: Context) -> list[Outcome]:
    vc = ctx.vc
    if not vc.app_log:
        return [skipped("no app_log configured (e.g. shared/storage/logs/laravel.log)")]
    if ctx.since is None:
        return [skipped("no switch time known to count errors from (give a deployment id)")]
    since = ctx.since
    zone = log_zone(vc.log_timezone)
    warn, fail = vc.log_errors_warn_above, vc.log_errors_fail_above
    threshold = f"<= {warn} new error lines" + (f" (fail > {fail})" if fail != warn else "")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))

    async def one(name: str) -> Outcome:
        path = vc.app_log or ""
        if not path.startswith("/"):
            path = posixpath.join(ctx.deploy_path(name), path)
        directory, pattern = posixpath.split(path)
        # the file name was checked against [A-Za-z0-9._*-] so its '*' may stay unquoted
        script = (
            f"cd {q(directory)} 2>/dev/null || {{ echo 'no directory' >&2; exit 3; }}; n=0; "
            f'for f in {pattern}; do [ -f "$f" ] || continue; n=$((n+1)); '
            f'tail -n {vc.log_tail_lines} -- "$f"; done; echo "{_FILES}$n"'
        )
        result = await ctx.sh(name, script)
        if not result.ok:
            return errored(f"cannot read {path}: {result.tail(1)}", threshold=threshold)
        lines = result.stdout.splitlines()
        files = int(lines[-1].removeprefix(_FILES)) if lines and lines[-1].startswith(_FILES) else 0
        body = "\n".join(lines[:-1])
        if files == 0:
            return errored(f"no log file matches {path}", threshold=threshold)
        found = count_log_errors(body, since, vc.log_error_pattern, zone)
        if body.strip() and found.stamped == 0:
            return errored(f"no timestamps recognised in {path}", threshold=threshold)
        status = banded(found.count, warn, fail)
        lower_bound = "" if found.complete or not found.stamped else "at least "
        message = f"{lower_bound}{found.count} error line(s) since {when}"
        if found.examples:
            message += f": {ctx.redact(found.examples[0])}"
        return Outcome(
            status,
            message,
            value=found.count,
            unit="errors",
            threshold=threshold,
            meta={
                "files": files,
                "examples": [ctx.redact(e) for e in found.examples],
                "since": since,
            },
        )

    return await ctx.each_host(one)
