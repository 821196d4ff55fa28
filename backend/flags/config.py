"""Configuration of feature flags (``[flags]`` in portal-ops.toml).

Where flags live and are published comes from the shared sections: ``[state] dir`` (the
store is ``journal.db`` there) and ``[redis] url`` / ``prefix`` (publication, usage).
"""

from __future__ import annotations

import re
from itertools import pairwise

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..durations import Duration
from .model import NAME_RULE, is_valid_name

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


class FlagsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # flags this release introduces: created off in phase 3, rolled out in phase 8
    release_flags: list[str] = Field(default_factory=list)
    rollout_steps: list[int] = Field(default_factory=lambda: [10, 50, 100])
    rollout_hold: Duration = Field(5.0, ge=0)  # seconds each step is held and watched
    # how often health is checked while a step is held (default: hold / 5, at most 10 s)
    rollout_check_interval: Duration | None = Field(None, gt=0)
    gate_timeout: Duration = Field(10.0, gt=0)  # a health gate silent this long is a failure
    stickiness: str = "company"  # the context field new flags bucket on
    # rollback phase 2: the whole kill switch (every flag off) instead of the release's flags
    kill_switch_on_rollback: bool = False

    @field_validator("release_flags")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        bad = [n for n in value if not is_valid_name(n)]
        if bad:
            raise ValueError(f"bad flag name(s) {bad}: {NAME_RULE}")
        return value

    @field_validator("rollout_steps")
    @classmethod
    def _steps(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("at least one step is needed, e.g. [10, 50, 100]")
        if any(not 1 <= p <= 100 for p in value):
            raise ValueError("each step is a percentage from 1 to 100")
        if any(b <= a for a, b in pairwise(value)):
            raise ValueError("steps must strictly increase, e.g. [10, 50, 100]")
        return value

    @field_validator("stickiness")
    @classmethod
    def _stickiness(cls, value: str) -> str:
        if not _FIELD.fullmatch(value):
            raise ValueError("name a context field: company, user, session, or a property")
        return value
