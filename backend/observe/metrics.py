"""Deploy metrics from the event stream, in Prometheus' text format.

Each portal-ops run is a short process, so counters cannot live in memory: the textfile
is read back at start and the counts go on from it (the file is the state, written
atomically, so node_exporter never scrapes half a file). The same registry is pushed to
a Pushgateway when one is configured. Dry runs are not counted. Failures to write or push
are logged, never raised: metrics must not stop a deployment or a rollback.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from ..events import Event, Kind
from .config import MetricsConfig

log = logging.getLogger(__name__)


class DeployMetrics:
    """A bus subscriber: ``bus.subscribe(DeployMetrics(config.metrics, target=...))``."""

    def __init__(self, config: MetricsConfig, target: str) -> None:
        self.config = config
        self.target = target
        self.registry = CollectorRegistry()
        r = self.registry
        self.deployments = Counter(
            "portal_ops_deployments", "Deployments finished, by outcome.",
            ["target", "outcome"], registry=r,
        )  # fmt: skip
        self.rollbacks = Counter(
            "portal_ops_rollbacks", "Rollbacks finished, by outcome.",
            ["target", "outcome"], registry=r,
        )  # fmt: skip
        self.phase_seconds = Gauge(
            "portal_ops_phase_duration_seconds", "Duration of each phase in the last deployment.",
            ["target", "phase"], registry=r,
        )  # fmt: skip
        self.deploy_seconds = Gauge(
            "portal_ops_deployment_duration_seconds", "Duration of the last deployment.",
            ["target"], registry=r,
        )  # fmt: skip
        self.rollback_seconds = Gauge(
            "portal_ops_rollback_duration_seconds", "Duration of the last rollback.",
            ["target"], registry=r,
        )  # fmt: skip
        self.last_success = Gauge(
            "portal_ops_last_success_timestamp_seconds",
            "Unix time the last deployment succeeded.", ["target"], registry=r,
        )  # fmt: skip
        self.dry: set[str] = set()
        self._load()

    # -- state from the last run -----------------------------------------------------------

    def _load(self) -> None:
        """Seed counters and gauges from the textfile a previous run wrote."""
        if not self.config.textfile:
            return
        try:
            text = Path(self.config.textfile).expanduser().read_text()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("metrics: cannot read %s: %s", self.config.textfile, exc)
            return
        counters = {
            "portal_ops_deployments_total": self.deployments,
            "portal_ops_rollbacks_total": self.rollbacks,
        }
        gauges = {
            "portal_ops_phase_duration_seconds": self.phase_seconds,
            "portal_ops_deployment_duration_seconds": self.deploy_seconds,
            "portal_ops_rollback_duration_seconds": self.rollback_seconds,
            "portal_ops_last_success_timestamp_seconds": self.last_success,
        }
        try:
            families = list(text_string_to_metric_families(text))
        except ValueError as exc:
            log.warning("metrics: %s is not Prometheus text (%s); starting afresh", text, exc)
            return
        for family in families:
            for sample in family.samples:
                if sample.name in counters:
                    counters[sample.name].labels(**sample.labels).inc(sample.value)
                elif sample.name in gauges:
                    gauges[sample.name].labels(**sample.labels).set(sample.value)

    # -- events ----------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        data = event.data or {}
        ident = event.deployment_id or ""
        if data.get("dry_run"):
            self.dry.add(ident)
        if ident in self.dry:
            return
        if event.kind == Kind.PHASE_FINISHED and event.run == "deploy" and event.phase:
            if isinstance(data.get("seconds"), int | float):
                self.phase_seconds.labels(self.target, event.phase).set(float(data["seconds"]))
        elif event.kind == Kind.DEPLOYMENT_FINISHED and event.run == "deploy":
            outcome = str(data.get("outcome") or "unknown")
            self.deployments.labels(self.target, outcome).inc()
            if isinstance(data.get("seconds"), int | float):
                self.deploy_seconds.labels(self.target).set(float(data["seconds"]))
            if outcome == "succeeded":
                self.last_success.labels(self.target).set(event.ts or time.time())
            self.publish()
        elif event.kind == Kind.ROLLBACK_FINISHED:
            self.rollbacks.labels(self.target, str(data.get("outcome") or "unknown")).inc()
            if isinstance(data.get("seconds"), int | float):
                self.rollback_seconds.labels(self.target).set(float(data["seconds"]))
            self.publish()

    def publish(self) -> None:
        if self.config.textfile:
            path = Path(self.config.textfile).expanduser()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_to_textfile(str(path), self.registry)  # temp file + rename
            except OSError as exc:
                log.warning("metrics: cannot write %s: %s", path, exc)
        if self.config.pushgateway:
            try:
                push_to_gateway(
                    self.config.pushgateway,
                    job=self.config.job,
                    registry=self.registry,
                    grouping_key={"target": self.target},
                    timeout=self.config.push_timeout,
                )
            except Exception as exc:  # network, HTTP error: logged, never raised
                log.warning("metrics: push to %s failed: %s", self.config.pushgateway, exc)


def attach_metrics(config: Any, bus: Any) -> DeployMetrics | None:
    """Subscribe deploy metrics to ``bus`` when ``[metrics]`` names a destination."""
    metrics_config = getattr(config, "metrics", None)
    if metrics_config is None or not metrics_config.enabled:
        return None
    metrics = DeployMetrics(metrics_config, target=config.portal.name)
    bus.subscribe(metrics)
    return metrics
