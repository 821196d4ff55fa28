"""The notification vocabulary: event names, severities and the default escalation path.

Kept free of any I/O so that the config, the renderer, the CLI and the engine bridge all
agree on one list, and a typo in portal-ops.toml is caught with the allowed names shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class NotifySeverity(StrEnum):
    """The strategy's escalation levels (not the engine's incident severities)."""

    SEV1 = "sev1"  # complete system failure: escalate to the CTO
    SEV2 = "sev2"  # major feature broken: DevOps lead + engineering manager
    SEV3 = "sev3"  # minor issue: standard team response
    INFO = "info"  # routine: deployment started, finished


SEVERITY_LABELS: dict[NotifySeverity, str] = {
    NotifySeverity.SEV1: "Severity 1 (complete failure)",
    NotifySeverity.SEV2: "Severity 2 (major feature broken)",
    NotifySeverity.SEV3: "Severity 3 (minor issue)",
    NotifySeverity.INFO: "Info",
}

# Most urgent first: used to sort and to pick the stronger of two severities.
SEVERITY_ORDER: tuple[NotifySeverity, ...] = (
    NotifySeverity.SEV1,
    NotifySeverity.SEV2,
    NotifySeverity.SEV3,
    NotifySeverity.INFO,
)


@dataclass(frozen=True)
class EventSpec:
    name: str
    severity: NotifySeverity
    description: str


# The seed's five events first (send-deployment-notification.sh), then the ones the engine
# sends by itself.
EVENTS: dict[str, EventSpec] = {
    spec.name: spec
    for spec in (
        EventSpec("pre-deployment", NotifySeverity.INFO, "a deployment is starting"),
        EventSpec("deployment-success", NotifySeverity.INFO, "a deployment finished and is live"),
        EventSpec("deployment-failed", NotifySeverity.SEV2, "a deployment failed or stopped"),
        EventSpec("rollback", NotifySeverity.SEV2, "a rollback was declared"),
        EventSpec("emergency", NotifySeverity.SEV1, "a critical incident needs people now"),
        EventSpec("rollback-started", NotifySeverity.SEV2, "a rollback began (engine)"),
        EventSpec("rollback-finished", NotifySeverity.SEV2, "a rollback completed or failed"),
        EventSpec("incident", NotifySeverity.SEV3, "an incident was logged"),
        EventSpec("check-failed", NotifySeverity.SEV3, "a validation check failed"),
    )
}

SEED_EVENTS: tuple[str, ...] = (
    "pre-deployment",
    "deployment-success",
    "deployment-failed",
    "rollback",
    "emergency",
)

# The strategy's escalation path on the conventional channel names. It applies when
# [[notify.routes]] is not given, to those of these channels that are configured.
DEFAULT_ROUTES: dict[NotifySeverity, tuple[str, ...]] = {
    NotifySeverity.INFO: ("deployments",),
    NotifySeverity.SEV3: ("deployments",),
    NotifySeverity.SEV2: ("deployments", "incidents"),
    NotifySeverity.SEV1: ("deployments", "incidents", "leadership"),
}


def event_names() -> str:
    """The allowed event names, for error messages."""
    return ", ".join(EVENTS)
