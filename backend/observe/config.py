"""``[metrics]`` in portal-ops.toml: where deploy metrics go (both, either or neither)."""

from __future__ import annotations

import re
from typing import Annotated

from ..durations import Duration
from ..schema import Check, Limits, Section, section

_LABEL_VALUE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _prom(value: str) -> str:
    if not value.endswith(".prom"):
        raise ValueError("textfile must end in .prom (node_exporter reads only those)")
    return value


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("pushgateway must be an http(s) URL such as http://gateway:9091")
    return value


def _job(value: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise ValueError("job: letters, digits, '.', '_', '-' (1-64)")
    return value


@section
class MetricsConfig(Section):
    # node_exporter's --collector.textfile.directory + a file name ending in .prom
    textfile: Annotated[str, Check(_prom)] | None = None
    pushgateway: Annotated[str, Check(_url)] | None = None  # http(s)://host:9091
    job: Annotated[str, Check(_job)] = "portal-ops"  # the Pushgateway job label
    # seconds; a slow gateway delays the exit
    push_timeout: Annotated[Duration, Limits(gt=0, le=30)] = 3.0

    @property
    def enabled(self) -> bool:
        return bool(self.textfile or self.pushgateway)
