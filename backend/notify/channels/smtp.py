"""E-mail over SMTP with aiosmtplib: STARTTLS or implicit TLS, AUTH, text and HTML parts.

Certificates are verified (a private CA can be given as ``ca_file``); a password only
travels inside TLS. The Message-ID is the same on every retry, so a duplicate that got
through before a timeout is folded together by mail clients.
"""

from __future__ import annotations

import email.utils
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import httpx

from ..catalog import NotifySeverity
from ..render import Message
from ..secrets import read_env
from .base import Attempt, Channel


class EmailChannel(Channel):
    kind = "email"

    def setup(self, env: Mapping[str, str]) -> None:
        self.password: str | None = None
        if self.config.password_env:
            self.password = read_env(env, self.key("password_env"), self.config.password_env)
            self.masker.add(self.password)
        self._tls: ssl.SSLContext | None = None

    def target(self) -> str:
        cfg = self.config
        mode = "tls" if cfg.tls else "starttls" if cfg.starttls else "plain"
        auth = f", auth ${cfg.password_env}" if cfg.password_env else ""
        return f"smtp://{cfg.host}:{cfg.effective_port} ({mode}{auth}) to {', '.join(cfg.to)}"

    def subject(self, message: Message) -> str:
        level = "" if message.severity == NotifySeverity.INFO else f"[{message.severity.upper()}] "
        prefix = f"{self.config.subject_prefix} " if self.config.subject_prefix else ""
        return f"{prefix}{level}{message.title}"

    def build(self, message: Message, delivery_id: str) -> EmailMessage:
        cfg = self.config
        mail = EmailMessage()
        mail["Subject"] = self.subject(message)
        mail["From"] = cfg.sender
        mail["To"] = ", ".join(cfg.to)
        if cfg.cc:
            mail["Cc"] = ", ".join(cfg.cc)
        mail["Date"] = email.utils.formatdate(localtime=False)
        domain = cfg.sender.rsplit("@", 1)[-1].strip(">") or None
        mail["Message-ID"] = f"<{delivery_id}@{domain}>" if domain else email.utils.make_msgid()
        mail["X-Portal-Ops-Event"] = message.event
        mail["X-Portal-Ops-Severity"] = str(message.severity)
        if message.severity == NotifySeverity.SEV1:
            mail["X-Priority"] = "1"
            mail["Importance"] = "high"
        mail.set_content(message.text)
        mail.add_alternative(message.html, subtype="html")
        return mail

    def preview(self, message: Message) -> dict[str, Any]:
        cfg = self.config
        return {
            "from": cfg.sender,
            "to": cfg.to,
            "cc": cfg.cc,
            "subject": self.subject(message),
            "text": message.text,
            "html": message.html,
        }

    def tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=self.config.ca_file)
        return self._tls

    async def deliver(
        self, message: Message, client: httpx.AsyncClient, delivery_id: str
    ) -> Attempt:
        cfg = self.config
        mail = self.build(message, delivery_id)
        encrypted = cfg.tls or cfg.starttls
        errors, _ = await aiosmtplib.send(
            mail,
            hostname=cfg.host,
            port=cfg.effective_port,
            username=cfg.username,
            password=self.password,
            use_tls=cfg.tls,
            start_tls=cfg.starttls if not cfg.tls else False,
            tls_context=self.tls_context() if encrypted else None,
            timeout=None,  # the notifier bounds the whole attempt
        )
        # aiosmtplib returns the recipients it could not deliver to (when not all failed).
        refused = {addr: r for addr, r in errors.items() if not 200 <= r.code < 300}
        accepted = len(cfg.to) + len(cfg.cc) - len(refused)
        if refused:
            listed = ", ".join(f"{a} ({r.code})" for a, r in refused.items())
            return Attempt(False, f"recipients refused: {listed}", retryable=False)
        return Attempt(True, f"accepted for {accepted} recipient(s)", retryable=False)

    def classify(self, exc: BaseException) -> Attempt:
        """SMTP 4xx and network trouble are retried; 5xx, auth and TLS failures are not."""
        name = type(exc).__name__
        text = " ".join((str(exc).strip() or "no detail").split())
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            return Attempt(False, f"authentication failed ({exc.code})", retryable=False)
        if isinstance(exc, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in text:
            return Attempt(False, f"TLS failed: {text}", retryable=False)
        if isinstance(exc, aiosmtplib.SMTPNotSupported):
            return Attempt(False, f"server does not support it: {text}", retryable=False)
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            codes = [r.code for r in exc.recipients]
            return Attempt(
                False, f"recipients refused: {codes}", retryable=all(400 <= c < 500 for c in codes)
            )
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return Attempt(
                False, f"{name} {exc.code}: {exc.message}", retryable=400 <= exc.code < 500
            )
        return Attempt(False, f"{name}: {text}", retryable=True)
