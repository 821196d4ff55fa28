"""Deploy metrics out to Prometheus: a textfile-collector file and/or a Pushgateway.

A bus subscriber like the notifier: it reads the engine's events and never imports the
engine. Grafana annotations and PagerDuty incidents are notification channels
(backend/notify/channels/), routed like Slack and e-mail.
"""

from .config import MetricsConfig
from .metrics import DeployMetrics

__all__ = ["DeployMetrics", "MetricsConfig"]
