"""The long tail through Apprise (Teams, Telegram, ntfy, PagerDuty, SMS gateways, ...).

Optional: ``pip install apprise`` (the ``portal-ops[apprise]`` extra). Apprise URLs embed
tokens, so they come from an environment variable and are masked like any secret; Apprise
gives back only "sent or not", so its detail is short. Without Apprise installed the
channel is reported as unusable, never a crash.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import httpx

from ..catalog import NotifySeverity
from ..render import Message
from ..secrets import read_env
from .base import Attempt, Channel

INSTALL_HINT = "Apprise is not installed: pip install apprise (the portal-ops[apprise] extra)"


def notify_type(message: Message) -> str:
    """Severity as Apprise's NotifyType: failure, warning, success or info."""
    if message.severity in (NotifySeverity.SEV1, NotifySeverity.SEV2):
        return "failure"
    if message.severity == NotifySeverity.SEV3:
        return "warning"
    outcome = message.context.get("outcome")
    return "success" if outcome in ("succeeded", "ok") else "info"


class AppriseChannel(Channel):
    kind = "apprise"

    def setup(self, env: Mapping[str, str]) -> None:
        raw = read_env(env, self.key("urls_env"), self.config.urls_env)
        self.urls = [u for u in re.split(r"[\s,]+", raw) if u]
        self.masker.add(raw)
        self.masker.extend(self.urls)
        try:
            import apprise  # noqa: F401
        except ImportError:
            self.problem = f"{self.key('kind')}: {INSTALL_HINT}"

    def target(self) -> str:
        schemes = sorted({u.split("://", 1)[0] for u in getattr(self, "urls", []) if "://" in u})
        return f"${self.config.urls_env} -> apprise ({', '.join(schemes) or 'no URLs'})"

    def preview(self, message: Message) -> dict[str, Any]:
        return {"title": message.title, "body": message.text, "notify_type": notify_type(message)}

    async def deliver(
        self, message: Message, client: httpx.AsyncClient, delivery_id: str
    ) -> Attempt:
        import apprise

        bundle = apprise.Apprise()
        rejected = sum(1 for url in self.urls if not bundle.add(url))
        if rejected or not len(bundle):
            return Attempt(False, f"{rejected} Apprise URL(s) not understood", retryable=False)
        kwargs = {"body": message.text, "title": message.title, "notify_type": notify_type(message)}
        if hasattr(bundle, "async_notify"):
            ok = await bundle.async_notify(**kwargs)
        else:  # older releases: the blocking call in a thread
            ok = await asyncio.to_thread(bundle.notify, **kwargs)
        # 1.x returns a bool, 2.x an AppriseResult that is truthy only on full success.
        failed = getattr(ok, "failed_count", None)
        if ok:
            return Attempt(True, f"sent to {len(bundle)} service(s)", retryable=False)
        if failed:
            return Attempt(False, f"Apprise: {failed} of {len(bundle)} service(s) failed")
        return Attempt(False, "Apprise reported a failure")
