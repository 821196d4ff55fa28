"""Configuration of feature flags (``[flags]`` in portal-ops.toml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FlagsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # flags this release introduces: created off in phase 3, rolled out in phase 8
    release_flags: list[str] = Field(default_factory=list)
    rollout_steps: list[int] = Field(default_factory=lambda: [10, 50, 100])
    rollout_hold: float = 5.0  # seconds each step is held and watched before the next
