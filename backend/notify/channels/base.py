"""What every channel is: a name, a place to send to, and one delivery attempt.

Retries, timeouts, rate gates and journaling live in the notifier, so a channel only
turns a :class:`~backend.notify.render.Message` into one request and says whether it
worked and whether trying again could help.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ..render import Message
from ..secrets import Masker, MissingSecret, read_env


@dataclass(frozen=True)
class Attempt:
    """The result of one try. ``detail`` is masked by the notifier before it is shown."""

    ok: bool
    detail: str
    status: int | None = None
    retryable: bool = True
    retry_after: float | None = None


class Channel(ABC):
    kind: str = ""

    def __init__(self, name: str, config: Any, env: Mapping[str, str], masker: Masker) -> None:
        self.name = name
        self.config = config
        self.masker = masker
        self.problem: str | None = None  # set when the channel cannot send (missing secret)
        try:
            self.setup(env)
        except MissingSecret as exc:
            self.problem = str(exc)

    def key(self, field: str) -> str:
        return f"notify.channels.{self.name}.{field}"

    @abstractmethod
    def setup(self, env: Mapping[str, str]) -> None:
        """Read secrets from ``env`` (register each with the masker); MissingSecret if absent."""

    @abstractmethod
    def target(self) -> str:
        """Where it sends, safe to show: no secret in it."""

    @abstractmethod
    def preview(self, message: Message) -> dict[str, Any]:
        """What would be sent, for ``--dry-run``; never includes a secret."""

    @abstractmethod
    async def deliver(
        self, message: Message, client: httpx.AsyncClient, delivery_id: str
    ) -> Attempt:
        """One attempt. Exceptions are allowed: :meth:`classify` turns them into an Attempt."""

    def classify(self, exc: BaseException) -> Attempt:
        """An exception from :meth:`deliver`: network trouble is worth retrying."""
        text = str(exc).strip() or "no detail"
        return Attempt(False, f"{type(exc).__name__}: {text}", retryable=True)


def http_result(response: httpx.Response) -> Attempt:
    """A webhook's answer: 2xx ok; 408, 429 and 5xx retried (429 after Retry-After)."""
    status = response.status_code
    body = " ".join(response.text[:200].split())
    if 200 <= status < 300:
        return Attempt(True, f"HTTP {status}", status=status, retryable=False)
    detail = f"HTTP {status}" + (f": {body}" if body else "")
    if status == 429:
        return Attempt(
            False,
            detail,
            status=status,
            retry_after=retry_after(response.headers.get("retry-after")),
        )
    if status == 408 or status >= 500:
        return Attempt(False, detail, status=status)
    return Attempt(False, detail, status=status, retryable=False)


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def http_url(env: Mapping[str, str], key: str, var: str, masker: Masker) -> str:
    """A webhook URL from ``var``; registered as a secret before anything can print it."""
    url = read_env(env, key, var)
    masker.add(url)
    if not url.startswith(("https://", "http://")):
        raise MissingSecret(f"{key}: environment variable {var} does not hold an http(s) URL")
    return url
