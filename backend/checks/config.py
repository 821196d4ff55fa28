"""Configuration of the validation phases (``[validation]`` in portal-ops.toml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ValidationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pass_score: float = 90.0  # go at or above this score when no critical check failed
    timeout: float = 20.0  # seconds per check
