"""Channel kinds: one module each; :func:`make_channel` picks by ``kind``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..secrets import Masker
from .apprise import AppriseChannel
from .base import Attempt, Channel
from .grafana import GrafanaChannel
from .pagerduty import PagerDutyChannel
from .slack import SlackChannel
from .smtp import EmailChannel
from .webhook import WebhookChannel

KINDS: dict[str, type[Channel]] = {
    "slack": SlackChannel,
    "email": EmailChannel,
    "webhook": WebhookChannel,
    "apprise": AppriseChannel,
    "grafana": GrafanaChannel,
    "pagerduty": PagerDutyChannel,
}


def make_channel(name: str, config: Any, env: Mapping[str, str], masker: Masker) -> Channel:
    return KINDS[config.kind](name, config, env, masker)


__all__ = ["KINDS", "Attempt", "Channel", "make_channel"]
