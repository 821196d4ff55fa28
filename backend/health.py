"""A host's health URL, from the config's template: one definition for the engine's
traffic steps, the checks and the flags' rollout gate."""

from __future__ import annotations

from .config import Config, HostConfig


def health_url(config: Config, host: HostConfig) -> str | None:
    template = host.health_url or config.portal.health_url
    if not template:
        return None
    return template.format(address=host.address, name=host.name)
