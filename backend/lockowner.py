"""Who holds the deploy lock: the owner record's format, its holder as shown to a person,
the Redis key, and whether a deployment ever held it.

Read by the engine's lock (:mod:`backend.engine.lock`, which takes, renews and releases it)
and by the checks (P15: no other deployment holds the portal), which must not import the
engine.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from .config import Config


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class LockHolder:
    host: str
    owner: dict[str, Any]
    lease_seconds: float | None = None

    @property
    def heartbeat_age(self) -> float | None:
        """Seconds since the holder last renewed (the host's clock), if known."""
        age = self.owner.get("age")
        return float(age) if isinstance(age, int | float) else None

    @property
    def stale(self) -> bool:
        """The heartbeat stopped: older than the lease (unknown age counts as live)."""
        age = self.heartbeat_age
        if self.lease_seconds is None or age is None:
            return False
        return age < 0 or age > self.lease_seconds

    def describe(self) -> str:
        o = self.owner
        since = o.get("since")
        held = f" for {_age(time.time() - since)}" if isinstance(since, int | float) else ""
        who = o.get("operator") or "unknown operator"
        beat = ""
        if self.heartbeat_age is not None and self.heartbeat_age < 0:
            beat = "; no expiry and no heartbeat (STALE)"
        elif self.heartbeat_age is not None:
            beat = f"; last heartbeat {_age(self.heartbeat_age)} ago"
            if self.lease_seconds is not None:
                beat += " (STALE: its run stopped)" if self.stale else " (live)"
        return (
            f"held on {self.host} by {who} on {o.get('machine', '?')} for deployment"
            f" {o.get('deployment_id', '?')}{held} (pid {o.get('pid', '?')}){beat}"
        )


def parse_owner(lines: list[str]) -> dict[str, Any]:
    """``AGE=<s>`` (optional) then the owner's JSON, as written by the layout's lock commands."""
    age: int | None = None
    if lines and lines[0].startswith("AGE="):
        with contextlib.suppress(ValueError):
            age = int(lines[0][4:].strip())
        lines = lines[1:]
    try:
        owner = json.loads("\n".join(lines)) if lines else {}
        owner = owner if isinstance(owner, dict) else {"raw": str(owner)[:200]}
    except ValueError:
        owner = {"raw": "\n".join(lines)[:200]}
    if age is not None:
        owner["age"] = age
    return owner


def redis_key(config: Config) -> str:
    return f"{config.redis.prefix}:lock:{config.portal.name}"


def held_lock(journal: Any, deployment_id: str) -> bool:
    """Did this deployment ever hold the lock? A run refused it in a race never changed a
    host, so it is not an unfinished deployment to resume or roll back."""
    return any(
        (e.data or {}).get("action") == "acquired" for e in journal.of_kind(deployment_id, "lock")
    )
