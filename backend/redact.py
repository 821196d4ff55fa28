"""The one redaction function: every printer, logger, journal row, report and notification
passes its text through :func:`redact` before it leaves the process.

It masks passwords in URLs (``redis://:pw@host``), tokens in query strings (``?token=...``),
and every configured secret value: whatever the environment variables named by the
config's ``*_env`` keys hold, and the password of every URL in the config. The config's
secrets are registered once, when the config is loaded (:func:`register_config`), so that
code far from the config (the Redis feed's error path, a log line) masks them too.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

MASK = "***"
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)([^@\s/]+)@")
_QUERY_TOKEN = re.compile(
    r"(?i)([?&;](?:access_token|token|api[_-]?key|key|secret|client_secret|password|passwd"
    r"|pwd|pass|auth|sig|signature|apikey)=)([^&#\s'\"]+)"
)
_URL_MASK = r"\g<1>" + MASK + "@"
_QUERY_MASK = r"\g<1>" + MASK
_SECRETS: set[str] = set()
_MIN_SECRET = 4  # shorter "secrets" would mask ordinary words
# _SECRETS longest first, sorted once per register, not per line; a tuple rebound whole,
# so a thread in redact never sees it half-updated
_by_length: tuple[str, ...] = ()


def register(*values: str | None) -> None:
    """Remember secret values (and the passwords of secret URLs) to mask from now on."""
    global _by_length
    for value in values:
        if not value or len(value) < _MIN_SECRET:
            continue
        _SECRETS.add(value)
        if "://" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password and len(password) >= _MIN_SECRET:
                _SECRETS.add(password)
    _by_length = tuple(sorted(_SECRETS, key=len, reverse=True))


def secret_values(settings: Any, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every secret a config (as plain data) refers to: the values of the environment
    variables its ``*_env`` keys name, and the passwords of the URLs it holds."""
    env = os.environ if environ is None else environ
    found: list[str] = []

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, str(k))
                if str(k).endswith("_env") and isinstance(v, str):
                    found.extend(x for x in re.split(r"[\s,]+", env.get(v, "")) if x)
                    found.append(env.get(v, ""))
                if str(k) == "headers_env" and isinstance(v, Mapping):
                    found.extend(env.get(str(name), "") for name in v.values())
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item, key)
        elif isinstance(node, str) and "://" in node:
            try:
                password = urlsplit(node).password
            except ValueError:
                password = None
            if password:
                found.append(password)

    walk(settings)
    return [v for v in found if v]


def register_config(config: Any) -> None:
    """Register every secret a loaded config refers to (a config section or plain data)."""
    from .schema import dump

    data = dump(config)
    register(*secret_values(data))
    install_log_redaction()


def redact(text: object, extra: Iterable[str] = ()) -> str:
    """``text`` with URL passwords, query-string tokens and every registered (or ``extra``)
    secret replaced by ``***``."""
    out = str(text)
    if "://" in out and "@" in out:  # what a URL with a password needs
        out = _URL_PASSWORD.sub(_URL_MASK, out)
    if "=" in out:  # what a query-string token needs
        out = _QUERY_TOKEN.sub(_QUERY_MASK, out)
    secrets: Iterable[str] = _by_length
    if extra:
        more = {s for s in extra if s and len(s) >= _MIN_SECRET}.difference(secrets)
        if more:
            secrets = sorted((*secrets, *more), key=len, reverse=True)
    for secret in secrets:
        if secret in out:
            out = out.replace(secret, MASK)
    return out


def redact_data(value: Any) -> Any:
    """:func:`redact` through dicts, lists and strings (an event's data, a report)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    return value


_installed = False


def install_log_redaction() -> None:
    """Every log record, from any logger, is redacted when it is created."""
    global _installed
    if _installed:
        return
    _installed = True
    factory = logging.getLogRecordFactory()

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record keeps its own error path
            return record
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return record

    logging.setLogRecordFactory(make)


class RedactingStream:
    """A text stream whose every write is redacted: what a command line prints (click,
    print, logging's last-resort handler) cannot show a secret, whoever wrote it."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str | bytes) -> int:
        if isinstance(text, bytes | bytearray):  # as the wrapped stream would (click probes)
            return self._stream.write(redact(bytes(text).decode("utf-8", "replace")).encode())
        self._stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
