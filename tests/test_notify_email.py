"""E-mail against a real SMTP server (aiosmtpd) with STARTTLS and AUTH on loopback."""

from __future__ import annotations

import email
import email.policy
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from backend.events import EventBus, Kind
from backend.journal import Journal
from backend.notify import Notifier, NotifyConfig
from backend.schema import parse
from tests.fixtures import free_port

USER = "portal-ops"
PASSWORD = "smtp-pa55word-very-secret"


@dataclass
class Mailbox:
    """The aiosmtpd handler: keeps every accepted message and who logged in."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        self.messages.append(email.message_from_bytes(raw, policy=email.policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        ):
            self.logins.append(data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


@dataclass
class SMTPServer:
    port: int
    ca_file: str
    mailbox: Mailbox


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def smtp(ca: trustme.CA, tmp_path: Path) -> Iterator[SMTPServer]:
    """aiosmtpd on a free loopback port: STARTTLS required, AUTH required (inside TLS)."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    mailbox = Mailbox()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_ctx,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=mailbox.authenticate,
    )
    controller.start()
    yield SMTPServer(controller.port, str(ca_file), mailbox)
    controller.stop()


def notifier_for(
    smtp: SMTPServer, bus: EventBus, password: str = PASSWORD, **keys: Any
) -> Notifier:
    channel = {
        "kind": "email",
        "host": "127.0.0.1",
        "port": smtp.port,
        "username": USER,
        "password_env": "SMTP_PASSWORD",
        "ca_file": smtp.ca_file,
        "sender": "portal-ops@example.com",
        "to": ["cto@example.com", "devops-lead@example.com"],
        "timeout": 5,
        **keys,
    }
    config = parse(
        NotifyConfig, {"channels": {"leadership": channel}, "backoff": 0.05, "attempts": 2}
    )
    return Notifier(config, bus, env={"SMTP_PASSWORD": password}, target="business-portal")


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.db")
    yield j
    j.close()


@pytest.fixture
def bus(journal: Journal) -> EventBus:
    b = EventBus()
    b.set_stamper(journal.record)
    return b


CONTEXT = {
    "deployment_id": "bp-20250801-0200",
    "revision": "v2.4.0",
    "operator": "alice@bastion",
    "hosts": ["web-1", "web-2"],
    "reason": "error rate 3.2% > 1% for 3 windows",
    "trigger": {"rule": "error_rate", "detail": "5xx 3.2% > 1%"},
}


async def test_email_over_starttls_with_auth_has_text_and_html_parts(
    smtp: SMTPServer, bus: EventBus, journal: Journal
) -> None:
    notifier = notifier_for(smtp, bus)
    notifier.send("rollback", {**CONTEXT, "automatic": True}, "sev1")
    (result,) = await notifier.aclose(10)
    assert result.ok, result.detail
    assert result.detail == "accepted for 2 recipient(s)"
    assert smtp.mailbox.logins == [USER]
    (mail,) = smtp.mailbox.messages
    assert smtp.mailbox.envelopes == [
        ("portal-ops@example.com", ["cto@example.com", "devops-lead@example.com"])
    ]
    assert mail["Subject"] == "[portal-ops] [SEV1] 🔴 Rolling back business-portal"
    assert mail["X-Portal-Ops-Event"] == "rollback" and mail["X-Priority"] == "1"
    assert mail["Message-ID"] == f"<{result.delivery}@example.com>"
    assert mail.is_multipart() and mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "An automatic rollback of deployment bp-20250801-0200 has been declared" in text
    assert "Reason: error rate 3.2% > 1% for 3 windows" in text
    assert "Trigger: error_rate: 5xx 3.2% &gt; 1%" not in text  # plain text is not escaped
    assert '<th align="left" style="padding-right: 16px;">Trigger</th>' in html
    assert "error rate 3.2% &gt; 1% for 3 windows" in html
    journaled = json.dumps([e.to_dict() for e in journal.events()])
    assert PASSWORD not in journaled
    (attempt,) = [e.data for e in journal.events() if e.kind == Kind.NOTIFICATION]
    assert attempt["ok"] and attempt["kind"] == "email" and "$SMTP_PASSWORD" in attempt["target"]


async def test_a_wrong_password_is_not_retried_and_not_revealed(
    smtp: SMTPServer, bus: EventBus, journal: Journal
) -> None:
    notifier = notifier_for(smtp, bus, password="wrong-pa55word-also-secret")
    notifier.send("emergency", {"message": "Critical issue"})
    (result,) = await notifier.aclose(10)
    assert not result.ok and result.attempts == 1
    assert result.detail.startswith("authentication failed (535")
    assert smtp.mailbox.messages == []
    journaled = json.dumps([e.to_dict() for e in journal.events()])
    assert "wrong-pa55word-also-secret" not in journaled
    assert any(e.kind == Kind.INCIDENT for e in journal.events())


async def test_an_untrusted_certificate_is_refused(smtp: SMTPServer, bus: EventBus) -> None:
    notifier = notifier_for(smtp, bus, ca_file=None)  # the system store does not know our CA
    notifier.send("emergency", {"message": "Critical issue"})
    (result,) = await notifier.aclose(10)
    assert not result.ok and result.attempts == 1 and "TLS failed" in result.detail
    assert smtp.mailbox.messages == [] and smtp.mailbox.logins == []


async def test_an_smtp_server_that_is_down_is_retried_then_reported(
    tmp_path: Path, bus: EventBus
) -> None:
    ca_file = tmp_path / "none.pem"
    down = SMTPServer(free_port(), str(ca_file), Mailbox())
    notifier = notifier_for(down, bus, ca_file=None)
    notifier.send("emergency", {"message": "Critical issue"})
    (result,) = await notifier.aclose(10)
    assert not result.ok and result.attempts == 2
