"""Slack-compatible incoming webhooks: Block Kit for Slack, full text for the rest.

Slack shows the blocks and uses ``text`` for notifications; Mattermost and other
Slack-compatible servers ignore ``blocks`` and render ``text`` as Markdown, so ``text``
carries the whole message. Block Kit limits (header 150, section 3000, field 2000,
10 fields) are enforced here, because Slack answers 400 to a message over them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from ..render import Message, mrkdwn
from ..secrets import display_url
from .base import Attempt, Channel, http_result, http_url


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(message: Message, config: Any = None) -> dict[str, Any]:
    """The JSON body: a header, the template's text, the facts as fields, links, a footer."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(message.title, 150), "emoji": True},
        },
    ]
    if message.slack:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut(message.slack, 3000)}}
        )
    if message.facts:
        fields = [
            {"type": "mrkdwn", "text": _cut(f"*{label}*\n{mrkdwn(value)}", 2000)}
            for label, value in message.facts[:10]
        ]
        blocks.append({"type": "section", "fields": fields})
    durations = message.context.get("durations") or {}
    if durations:
        from ..render import seconds

        line = " · ".join(f"{mrkdwn(p)} {seconds(s)}" for p, s in durations.items())
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(line, 2000)}]}
        )
    if message.links:
        line = " · ".join(f"<{u}|{mrkdwn(n)}>" for n, u in message.links.items())
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(line, 3000)}})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": " · ".join(
                        ("portal-ops", message.event, message.severity, message.timestamp)
                    ),
                }
            ],
        }
    )
    payload: dict[str, Any] = {"text": _cut(mrkdwn(message.text), 39000), "blocks": blocks}
    if config is not None:
        for key in ("username", "icon_emoji", "channel"):
            value = getattr(config, key, None)
            if value:
                payload[key] = value
    return payload


class SlackChannel(Channel):
    kind = "slack"

    def setup(self, env: Mapping[str, str]) -> None:
        self.url = http_url(env, self.key("url_env"), self.config.url_env, self.masker)

    def target(self) -> str:
        shown = display_url(self.url) if self.problem is None else "(not set)"
        return f"${self.config.url_env} -> {shown}"

    def preview(self, message: Message) -> dict[str, Any]:
        return {"json": slack_payload(message, self.config)}

    async def deliver(
        self, message: Message, client: httpx.AsyncClient, delivery_id: str
    ) -> Attempt:
        response = await client.post(self.url, json=slack_payload(message, self.config))
        return http_result(response)
