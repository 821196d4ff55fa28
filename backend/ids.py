"""Deployment ids unique across machines: ``bp-YYYYMMDD-HHMMSS-xxxxxx``.

UTC to the second plus a short random suffix, so two machines (a laptop and a CI runner,
two state dirs) deploying in the same second still get different ids; phase 1 also
refuses an id that already exists on any host. Ids sort by time.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


def new_deployment_id(
    existing: Iterable[str] = (), now: float | None = None, prefix: str = "bp"
) -> str:
    """``bp-20250801-020000-3fa9c1``; never one of ``existing``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now if now is not None else time.time()))
    taken = set(existing)
    while True:
        candidate = f"{prefix}-{stamp}-{secrets.token_hex(3)}"
        if candidate not in taken:
            return candidate


def valid_id(value: str) -> bool:
    """Whether ``value`` can name a release folder (no slash, no leading dot or dash)."""
    return bool(ID_PATTERN.match(value))
