"""Grafana annotations through its HTTP API (``POST /api/annotations``).

Every routed message becomes an annotation tagged ``portal-ops``, the target, the event
(``event:rollback``) and any configured tags, so a dashboard's annotation query can show
deployments and rollbacks over the graphs. The end of a deployment or rollback is a
region covering its duration. The service-account token comes from the environment.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from ..render import Message
from ..secrets import read_env
from .base import Attempt, Channel, http_result

REGION_EVENTS = ("deployment-success", "deployment-failed", "rollback-finished")


def annotation(message: Message, tags: list[str], dashboard_uid: str | None) -> dict[str, Any]:
    ctx = message.context
    now_ms = int(time.time() * 1000)
    body: dict[str, Any] = {
        "time": now_ms,
        "tags": [
            "portal-ops",
            *([ctx["target"]] if ctx.get("target") else []),
            f"event:{message.event}",
            f"severity:{message.severity}",
            *([f"outcome:{ctx['outcome']}"] if ctx.get("outcome") else []),
            *tags,
        ],
        "text": f"{message.title}\n{message.summary}".strip(),
    }
    duration = ctx.get("duration")
    if message.event in REGION_EVENTS and isinstance(duration, int | float) and duration > 0:
        body["time"] = now_ms - int(duration * 1000)
        body["timeEnd"] = now_ms
    if dashboard_uid:
        body["dashboardUID"] = dashboard_uid
    return body


class GrafanaChannel(Channel):
    kind = "grafana"

    def setup(self, env: Mapping[str, str]) -> None:
        self.token = read_env(env, self.key("token_env"), self.config.token_env)
        self.masker.add(self.token)
        self.url = self.config.url.rstrip("/") + "/api/annotations"

    def target(self) -> str:
        return f"{self.url} (token ${self.config.token_env})"

    def preview(self, message: Message) -> dict[str, Any]:
        return {"json": annotation(message, self.config.tags, self.config.dashboard_uid)}

    async def deliver(
        self, message: Message, client: httpx.AsyncClient, delivery_id: str
    ) -> Attempt:
        response = await client.post(
            self.url,
            json=annotation(message, self.config.tags, self.config.dashboard_uid),
            headers={"Authorization": f"Bearer {self.token}", "User-Agent": "portal-ops"},
        )
        return http_result(response)
