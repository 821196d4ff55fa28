"""Deploy metrics out to Prometheus: a textfile-collector file and/or a Pushgateway.

A bus subscriber like the notifier: it reads the engine's events and never imports the
engine. Grafana annotations and PagerDuty incidents are notification channels
(backend/notify/channels/), routed like Slack and e-mail.

``DeployMetrics`` is imported on first use: loading the config (which needs only
``MetricsConfig``) must not pay for prometheus_client.
"""

from typing import Any

from .config import MetricsConfig

__all__ = ["DeployMetrics", "MetricsConfig"]


def __getattr__(name: str) -> Any:
    if name == "DeployMetrics":
        from .metrics import DeployMetrics

        return DeployMetrics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
