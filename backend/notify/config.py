"""Configuration of notifications (``[notify]`` in portal-ops.toml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class NotifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
