"""Deployment ids in the strategy's form: ``bp-YYYYMMDD-HHMM``, made unique."""

from __future__ import annotations

import time
from collections.abc import Iterable


def new_deployment_id(existing: Iterable[str], now: float | None = None, prefix: str = "bp") -> str:
    """``bp-20250801-0200``; a second one in the same minute gets ``-2``, then ``-3``..."""
    base = f"{prefix}-" + time.strftime("%Y%m%d-%H%M", time.localtime(now or time.time()))
    taken = set(existing)
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"
