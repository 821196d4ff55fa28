"""A generic JSON webhook: our documented payload, optionally HMAC-SHA256 signed.

The signature covers ``<timestamp>.<body>`` so a receiver can refuse replays; the delivery
id stays the same across retries so a receiver can drop duplicates.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

import httpx

from ..render import Message
from ..secrets import display_url, read_env
from .base import Attempt, Channel, http_result, http_url

SCHEMA = "portal-ops.notification/v1"
SIGNATURE_HEADER = "X-Portal-Ops-Signature"
TIMESTAMP_HEADER = "X-Portal-Ops-Timestamp"
DELIVERY_HEADER = "X-Portal-Ops-Delivery"
EVENT_HEADER = "X-Portal-Ops-Event"


def webhook_payload(message: Message, delivery_id: str) -> dict[str, Any]:
    """The body documented in docs/notify.md (schema ``portal-ops.notification/v1``)."""
    ctx = message.context
    return {
        "schema": SCHEMA,
        "id": delivery_id,
        "event": message.event,
        "severity": str(message.severity),
        "title": message.title,
        "summary": message.summary,
        "text": message.text,
        "timestamp": message.timestamp,
        "deployment": {
            "id": ctx.get("deployment_id"),
            "target": ctx.get("target"),
            "revision": ctx.get("revision"),
            "release": ctx.get("release"),
            "operator": ctx.get("operator") or None,
            "outcome": ctx.get("outcome"),
            "hosts": ctx.get("hosts") or [],
            "durations": ctx.get("durations") or {},
            "duration_seconds": ctx.get("duration"),
        },
        "reason": ctx.get("reason"),
        "message": ctx.get("message"),
        "trigger": ctx.get("trigger") or None,
        "links": message.links,
        # incident state: "triggered" opens/updates an alarm, "resolved" closes it; a
        # receiver groups them by dedup_key (one per deployment); null: informational
        "status": ctx.get("status"),
        "dedup_key": ctx.get("dedup_key"),
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, ``timestamp + "." + body``)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookChannel(Channel):
    kind = "webhook"

    def setup(self, env: Mapping[str, str]) -> None:
        cfg = self.config
        self.url = http_url(env, self.key("url_env"), cfg.url_env, self.masker)
        self.secret: str | None = None
        if cfg.secret_env:
            self.secret = read_env(env, self.key("secret_env"), cfg.secret_env)
            self.masker.add(self.secret)
        self.secret_headers: dict[str, str] = {}
        for header, var in cfg.headers_env.items():
            value = read_env(env, self.key(f"headers_env.{header}"), var)
            self.masker.add(value)
            self.secret_headers[header] = value

    def target(self) -> str:
        shown = display_url(self.url) if self.problem is None else "(not set)"
        signed = ", signed" if self.config.secret_env else ""
        return f"${self.config.url_env} -> {shown}{signed}"

    def headers(self, message: Message, delivery_id: str, body: bytes) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "portal-ops",
            EVENT_HEADER: message.event,
            DELIVERY_HEADER: delivery_id,
            **self.config.headers,
            **self.secret_headers,
        }
        if self.secret:
            stamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = stamp
            headers[SIGNATURE_HEADER] = sign(self.secret, stamp, body)
        return headers

    def preview(self, message: Message) -> dict[str, Any]:
        names = [EVENT_HEADER, DELIVERY_HEADER, *self.config.headers, *self.config.headers_env]
        if self.config.secret_env:
            names += [TIMESTAMP_HEADER, SIGNATURE_HEADER]
        return {"json": webhook_payload(message, "(delivery id)"), "headers": names}

    async def deliver(
        self, message: Message, client: httpx.AsyncClient, delivery_id: str
    ) -> Attempt:
        body = json.dumps(webhook_payload(message, delivery_id), separators=(",", ":")).encode()
        response = await client.post(
            self.url, content=body, headers=self.headers(message, delivery_id, body)
        )
        return http_result(response)
