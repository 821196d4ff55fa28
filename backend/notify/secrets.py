"""Secrets for channels: read from the environment, and masked wherever text leaves us.

Every secret value a channel resolves is registered with a :class:`Masker`; every string
that goes into the journal, an incident, a log line or the CLI passes through it. Masking
the URL's path and query too covers libraries that print only part of a URL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from ..redact import redact

MASK = "***"


class Masker:
    """Replaces every registered secret (and the secret parts of URLs) with ``***``."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, value: str | None) -> None:
        if not value or len(value) < 4:  # a 3-character "secret" would mask ordinary words
            return
        self._secrets.add(value)
        if "://" in value:
            parts = urlsplit(value)
            tail = parts.path + (f"?{parts.query}" if parts.query else "")
            if len(tail) >= 8:
                self._secrets.add(tail)
            if parts.password:
                self._secrets.add(parts.password)

    def extend(self, values: Iterable[str | None]) -> None:
        for value in values:
            self.add(value)

    def __call__(self, text: object) -> str:
        out = str(text)
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in out:
                out = out.replace(secret, MASK)
        return redact(out)

    def contains_secret(self, text: str) -> bool:
        return any(s in text for s in self._secrets)


def display_url(url: str) -> str:
    """What may be shown of a URL: scheme and host only (webhook URLs are credentials)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return MASK
    return f"{parts.scheme}://{host}/{MASK}"


class MissingSecret(Exception):
    """A channel's environment variable is not set; the message names key and variable."""


def read_env(env: Mapping[str, str], key: str, var: str) -> str:
    """The value of ``var``, or :class:`MissingSecret` naming the config key that wants it."""
    value = env.get(var, "").strip()
    if not value:
        raise MissingSecret(f"{key}: environment variable {var} is not set (or empty)")
    return value
