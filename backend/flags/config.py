"""Configuration of feature flags (``[flags]`` in portal-ops.toml).

Where flags live and are published comes from the shared sections: ``[state] dir`` (the
store is ``journal.db`` there) and ``[redis] url`` / ``prefix`` (publication, usage).
"""

from __future__ import annotations

import re
from dataclasses import field
from itertools import pairwise
from typing import Annotated

from ..durations import Duration
from ..schema import Check, Limits, Section, section
from .model import NAME_RULE, is_valid_name

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


def _names(value: list[str]) -> list[str]:
    bad = [n for n in value if not is_valid_name(n)]
    if bad:
        raise ValueError(f"bad flag name(s) {bad}: {NAME_RULE}")
    return value


def _steps(value: list[int]) -> list[int]:
    if not value:
        raise ValueError("at least one step is needed, e.g. [10, 50, 100]")
    if any(not 1 <= p <= 100 for p in value):
        raise ValueError("each step is a percentage from 1 to 100")
    if any(b <= a for a, b in pairwise(value)):
        raise ValueError("steps must strictly increase, e.g. [10, 50, 100]")
    return value


def _stickiness(value: str) -> str:
    if not _FIELD.fullmatch(value):
        raise ValueError("name a context field: company, user, session, or a property")
    return value


@section
class FlagsConfig(Section):
    # flags this release introduces: created off in phase 3, rolled out in phase 8
    release_flags: Annotated[list[str], Check(_names)] = field(default_factory=list)
    rollout_steps: Annotated[list[int], Check(_steps)] = field(
        default_factory=lambda: [10, 50, 100]
    )
    rollout_hold: Annotated[Duration, Limits(ge=0)] = 5.0  # seconds each step is held, watched
    # how often health is checked while a step is held (default: hold / 5, at most 10 s)
    rollout_check_interval: Annotated[Duration, Limits(gt=0)] | None = None
    gate_timeout: Annotated[Duration, Limits(gt=0)] = 10.0  # a silent health gate fails
    stickiness: Annotated[str, Check(_stickiness)] = "company"  # new flags bucket on it
    # rollback phase 2: the whole kill switch (every flag off) instead of the release's flags
    kill_switch_on_rollback: bool = False
