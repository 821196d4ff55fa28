"""Configuration of monitoring (``[monitor]`` in portal-ops.toml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class MonitorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_seconds: float = 30.0
    auto_rollback: bool = True
    response_time_target_ms: float = 200.0
    response_time_acceptable_ms: float = 500.0
    error_rate_target: float = 0.001
    error_rate_acceptable: float = 0.01
