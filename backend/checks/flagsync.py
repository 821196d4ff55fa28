"""Flags published in Redis match the flag store (Q16).

The comparison belongs to the flags package; this check looks up its hook lazily so that
validation works before (and without) it:

    backend.flags.verify_publication(config) -> result      (sync or async)

(or the same function in ``backend.flags.publish``). ``result`` is a bool, an
``(ok, message)`` pair, or a mapping/object with ``ok`` and optionally ``mismatches``
(flag names), ``checked`` (flags compared) and ``message``. It may raise: that is an
``error`` row. Without the hook, without Redis, or with no flag in the store (``checked``
0 and nothing served), the check is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import time
from collections.abc import Callable
from typing import Any

from .context import Context
from .model import Outcome, check, errored, failed, passed, skipped

HOOK = "verify_publication"


def find_hook() -> Callable[..., Any] | None:
    for module_name in ("backend.flags", "backend.flags.publish"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        hook = getattr(module, HOOK, None)
        if callable(hook):
            return hook
    return None


def _field(result: Any, name: str, default: Any = None) -> Any:
    if isinstance(result, dict):
        return result.get(name, default)
    return getattr(result, name, default)


@check("Q16", "Flags in Redis match the flag store", "flags", weight=4, critical=True)
async def flags_published(ctx: Context) -> list[Outcome]:
    if not ctx.config.redis.url:
        return [skipped("flag store not configured (no [redis] url flags are published to)")]
    hook = find_hook()
    if hook is None:
        return [skipped("flag store not configured")]
    threshold = "0 mismatches"
    started = time.perf_counter()
    try:
        if inspect.iscoroutinefunction(hook):
            result = await hook(ctx.config)
        else:
            result = await asyncio.to_thread(hook, ctx.config)
    except Exception as exc:
        return [errored(f"cannot compare flags: {type(exc).__name__}: {exc}", threshold=threshold)]
    elapsed = (time.perf_counter() - started) * 1000
    mismatches: list[object]
    if isinstance(result, bool):
        ok, mismatches, message, checked = result, [], "", None
    elif isinstance(result, tuple) and len(result) == 2:
        ok, message = bool(result[0]), str(result[1])
        mismatches, checked = [], None
    else:
        ok = bool(_field(result, "ok", False))
        mismatches = list(_field(result, "mismatches", []) or [])
        message = str(_field(result, "message", "") or "")
        checked = _field(result, "checked")
    kw = {
        "value": len(mismatches),
        "unit": "mismatches",
        "threshold": threshold,
        "meta": {"mismatches": [str(m) for m in mismatches[:20]], "checked": checked},
        "duration_ms": elapsed,
    }
    if not mismatches and checked == 0:
        return [skipped("no flags in the flag store to compare", duration_ms=elapsed)]
    if ok and not mismatches:
        counted = f"{checked} flags" if checked is not None else "flags"
        return [passed(message or f"{counted} in Redis match the store", **kw)]
    listed = ", ".join(str(m) for m in mismatches[:5])
    return [failed(message or f"flags differ between Redis and the store: {listed}", **kw)]
