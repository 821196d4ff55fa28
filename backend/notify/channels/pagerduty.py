"""PagerDuty Events API v2: trigger an incident on an alarm, resolve it when it is over.

The dedup key is the deployment's (``portal-ops/<target>/<deployment id>``, set by the
bridge), so every alarm of one deployment lands on one incident and the successful
rollback resolves it. Informational messages (no ``status``) are not sent: PagerDuty is
for what needs a person. The routing key comes from the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from ..catalog import NotifySeverity
from ..render import Message
from ..secrets import read_env
from .base import Attempt, Channel, http_result

SEVERITY = {
    NotifySeverity.SEV1: "critical",
    NotifySeverity.SEV2: "error",
    NotifySeverity.SEV3: "warning",
    NotifySeverity.INFO: "info",
}


def event_body(message: Message, routing_key: str) -> dict[str, Any] | None:
    """The Events v2 body for ``message``, or None when it is not an incident matter."""
    ctx = message.context
    status, key = ctx.get("status"), ctx.get("dedup_key")
    if status == "resolved" and key:
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": key}
    if status != "triggered":
        return None
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "payload": {
            "summary": message.title[:1024],
            "source": ctx.get("target") or "portal-ops",
            "severity": SEVERITY.get(message.severity, "error"),
            "component": "deployment",
            "group": ctx.get("target") or None,
            "class": message.event,
            "custom_details": {
                "deployment_id": ctx.get("deployment_id"),
                "revision": ctx.get("revision"),
                "reason": ctx.get("reason") or ctx.get("message"),
                "text": message.text[:4000],
            },
        },
        "client": "portal-ops",
        "links": [{"href": url, "text": name} for name, url in message.links.items()],
    }
    if key:
        body["dedup_key"] = key
    return body


class PagerDutyChannel(Channel):
    kind = "pagerduty"

    def setup(self, env: Mapping[str, str]) -> None:
        self.routing_key = read_env(env, self.key("routing_key_env"), self.config.routing_key_env)
        self.masker.add(self.routing_key)

    def target(self) -> str:
        return f"{self.config.events_url} (routing key ${self.config.routing_key_env})"

    def preview(self, message: Message) -> dict[str, Any]:
        body = event_body(message, "(routing key)")
        return {"json": body} if body else {"skipped": "informational: not sent to PagerDuty"}

    async def deliver(
        self, message: Message, client: httpx.AsyncClient, delivery_id: str
    ) -> Attempt:
        body = event_body(message, self.routing_key)
        if body is None:
            return Attempt(True, "informational: not sent to PagerDuty", retryable=False)
        response = await client.post(self.config.events_url, json=body)
        return http_result(response)
