"""``[metrics]`` in portal-ops.toml: where deploy metrics go (both, either or neither)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..durations import Duration

_LABEL_VALUE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class MetricsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)

    # node_exporter's --collector.textfile.directory + a file name ending in .prom
    textfile: str | None = None
    pushgateway: str | None = None  # http(s)://host:9091
    job: str = "portal-ops"  # the Pushgateway job label
    push_timeout: Duration = Field(3.0, gt=0, le=30)  # seconds; a slow gateway delays the exit

    @field_validator("textfile")
    @classmethod
    def _prom(cls, value: str | None) -> str | None:
        if value is not None and not value.endswith(".prom"):
            raise ValueError("textfile must end in .prom (node_exporter reads only those)")
        return value

    @field_validator("pushgateway")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("pushgateway must be an http(s) URL such as http://gateway:9091")
        return value

    @field_validator("job")
    @classmethod
    def _job(cls, value: str) -> str:
        if not _LABEL_VALUE.match(value):
            raise ValueError("job: letters, digits, '.', '_', '-' (1-64)")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.textfile or self.pushgateway)
