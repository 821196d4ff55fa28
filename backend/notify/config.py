"""Configuration of notifications (``[notify]`` in portal-ops.toml).

Secrets are never written here: a channel names the environment variable that holds its
webhook URL or password (``url_env``, ``password_env``, ``secret_env``). Validators that
look at those names run on the whole channel table, so an error message can never echo a
URL pasted by mistake where a variable name belongs.
"""

from __future__ import annotations

import re
import string
from dataclasses import field
from typing import Annotated, Any, Literal

from ..durations import Duration
from ..schema import Check, Length, Limits, Section, Tagged, section
from .catalog import DEFAULT_ROUTES, EVENTS, NotifySeverity, event_names

_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
LINK_FIELDS = ("deployment_id", "target", "revision", "event")


def _check_env_names(raw: Any, keys: tuple[str, ...]) -> Any:
    """Each ``*_env`` key must be a variable name; say so without repeating the value."""
    if not isinstance(raw, dict):
        return raw
    for key in keys:
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not _ENV_NAME.match(value):
            raise ValueError(
                f"{key} must be the NAME of an environment variable"
                " (e.g. SLACK_WEBHOOK_DEPLOYMENTS); put the secret itself in the environment,"
                " never in the config file"
            )
    return raw


def _addresses(value: list[str]) -> list[str]:
    bad = [a for a in value if "@" not in a or any(c in a for c in " ,;<>\r\n")]
    if bad:
        raise ValueError(f"not plain e-mail addresses: {bad}")
    return value


def _header_names(value: dict[str, str]) -> dict[str, str]:
    bad = [h for h in value if not _HEADER_NAME.match(h)]
    if bad:
        raise ValueError(f"bad header names {bad}")
    return value


def _http_url(message: str) -> Check:
    def http(value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(message)
        return value

    return Check(http)


def _known_events(value: Any) -> Any:
    bad = [e for e in value if e not in EVENTS]
    if bad:
        raise ValueError(f"unknown events {bad}; allowed: {event_names()}")
    return value


@section
class _ChannelBase(Section):
    enabled: bool = True
    # seconds per attempt; None: [notify] timeout
    timeout: Annotated[Duration, Limits(gt=0, le=300)] | None = None
    attempts: Annotated[int, Limits(ge=1, le=10)] | None = None  # None: [notify] attempts


@section
class SlackChannel(_ChannelBase):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, ...)."""

    kind: Literal["slack"]
    url_env: str
    username: str | None = None  # honoured by Mattermost; Slack app webhooks ignore it
    icon_emoji: str | None = None
    channel: str | None = None  # Mattermost override; Slack webhooks post where created
    min_interval: Annotated[Duration, Limits(ge=0, le=60)] = (
        1.0  # Slack allows about 1 message/s per webhook
    )

    @classmethod
    def _shorthand(cls, raw: Any) -> Any:
        return _check_env_names(raw, ("url_env",))


@section
class EmailChannel(_ChannelBase):
    """SMTP with STARTTLS (port 587) or implicit TLS (465), with or without AUTH."""

    kind: Literal["email"]
    host: Annotated[str, Length(min=1)]
    port: Annotated[int, Limits(ge=1, le=65535)] | None = None  # None: 465 with tls, else 587
    starttls: bool = True
    tls: bool = False  # implicit TLS from the first byte (port 465)
    username: str | None = None
    password_env: str | None = None
    ca_file: str | None = None  # a private CA bundle; the system store otherwise
    sender: Annotated[str, Length(min=3)]
    to: Annotated[list[str], Length(min=1), Check(_addresses)]
    cc: Annotated[list[str], Check(_addresses)] = field(default_factory=list)
    subject_prefix: str = "[portal-ops]"

    @classmethod
    def _shorthand(cls, raw: Any) -> Any:
        return _check_env_names(raw, ("password_env",))

    def _consistent(self) -> None:
        if self.tls and self.starttls:
            raise ValueError("choose one of tls = true (implicit TLS, port 465) or starttls = true")
        if bool(self.username) != bool(self.password_env):
            raise ValueError("username and password_env go together (AUTH needs both)")
        if self.username and not (self.tls or self.starttls):
            raise ValueError(
                "AUTH without starttls or tls would send the password in clear text;"
                " set starttls = true"
            )

    @property
    def effective_port(self) -> int:
        return self.port or (465 if self.tls else 587)


@section
class WebhookChannel(_ChannelBase):
    """A generic JSON POST (schema in docs/notify.md), optionally HMAC-signed."""

    kind: Literal["webhook"]
    url_env: str
    secret_env: str | None = None  # HMAC-SHA256 key for X-Portal-Ops-Signature
    # static, not secret
    headers: Annotated[dict[str, str], Check(_header_names)] = field(default_factory=dict)
    # header -> env var (tokens)
    headers_env: Annotated[dict[str, str], Check(_header_names)] = field(default_factory=dict)

    @classmethod
    def _shorthand(cls, raw: Any) -> Any:
        raw = _check_env_names(raw, ("url_env", "secret_env"))
        if isinstance(raw, dict) and isinstance(raw.get("headers_env"), dict):
            for header, var in raw["headers_env"].items():
                if not isinstance(var, str) or not _ENV_NAME.match(var):
                    raise ValueError(
                        f"headers_env.{header} must be the NAME of an environment variable"
                    )
        return raw


@section
class AppriseChannel(_ChannelBase):
    """The long tail (Teams, Telegram, ntfy, SMS, ...) through Apprise, if installed."""

    kind: Literal["apprise"]
    urls_env: str  # one or more Apprise URLs (they embed tokens), space or comma separated

    @classmethod
    def _shorthand(cls, raw: Any) -> Any:
        return _check_env_names(raw, ("urls_env",))


@section
class GrafanaChannel(_ChannelBase):
    """Annotations on Grafana dashboards (HTTP API, service-account token)."""

    kind: Literal["grafana"]
    # https://grafana.example.com (not a secret; the token is)
    url: Annotated[str, _http_url("url must be the http(s) URL of Grafana")]
    token_env: str
    dashboard_uid: str | None = None  # None: an organisation-wide annotation
    tags: list[str] = field(default_factory=list)

    @classmethod
    def _shorthand(cls, raw: Any) -> Any:
        return _check_env_names(raw, ("token_env",))


@section
class PagerDutyChannel(_ChannelBase):
    """PagerDuty Events API v2: trigger on an alarm, resolve when the rollback succeeds."""

    kind: Literal["pagerduty"]
    routing_key_env: str  # the integration's routing key, from the environment
    events_url: Annotated[str, _http_url("events_url must be an http(s) URL")] = (
        "https://events.pagerduty.com/v2/enqueue"
    )

    @classmethod
    def _shorthand(cls, raw: Any) -> Any:
        return _check_env_names(raw, ("routing_key_env",))


ChannelConfig = Annotated[
    SlackChannel
    | EmailChannel
    | WebhookChannel
    | AppriseChannel
    | GrafanaChannel
    | PagerDutyChannel,
    Tagged("kind"),
]


def _channel_names(value: dict[str, Any]) -> dict[str, Any]:
    bad = [n for n in value if not _CHANNEL_NAME.match(n)]
    if bad:
        raise ValueError(f"bad channel names {bad}: letters, digits, '.', '_', '-'")
    return value


def _links(value: dict[str, str]) -> dict[str, str]:
    for name, url in value.items():
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"links.{name} must be an http(s) URL")
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(url) if f is not None}
        except ValueError as exc:
            raise ValueError(f"links.{name}: bad placeholder ({exc})") from None
        unknown = sorted(fields - set(LINK_FIELDS))
        if unknown:
            raise ValueError(
                f"links.{name}: unknown placeholders {unknown}; allowed: {list(LINK_FIELDS)}"
            )
    return value


@section
class Route(Section):
    """Messages of ``severity`` (and, if given, only of ``events``) go to ``channels``."""

    severity: NotifySeverity
    channels: Annotated[list[str], Length(min=1)]
    # empty: every event
    events: Annotated[list[str], Check(_known_events)] = field(default_factory=list)


@section
class EventSettings(Section):
    """Per-event overrides: a different default severity, fixed channels, or off."""

    enabled: bool = True
    severity: NotifySeverity | None = None
    channels: list[str] | None = None  # replaces routing for this event


@section
class NotifyConfig(Section):
    enabled: bool = True
    channels: Annotated[dict[str, ChannelConfig], Check(_channel_names)] = field(
        default_factory=dict
    )
    routes: list[Route] = field(default_factory=list)  # empty: the default escalation path
    events: Annotated[dict[str, EventSettings], Check(_known_events)] = field(default_factory=dict)
    templates_dir: str | None = None  # overrides: <event>.j2 files, looked up first
    # name -> URL; {deployment_id} etc.
    links: Annotated[dict[str, str], Check(_links)] = field(default_factory=dict)
    timeout: Annotated[Duration, Limits(gt=0, le=300)] = 10.0  # seconds per delivery attempt
    attempts: Annotated[int, Limits(ge=1, le=10)] = 4  # tries per delivery, the first included
    backoff: Annotated[float, Limits(ge=0, le=60)] = 1.0  # first retry delay; doubles each time
    backoff_max: Annotated[float, Limits(ge=0, le=600)] = 30.0
    retry_after_max: Annotated[float, Limits(ge=0, le=600)] = 60.0  # cap on a server's Retry-After
    drain_timeout: Annotated[Duration, Limits(gt=0, le=3600)] = (
        60.0  # how long the CLI waits at exit
    )

    def _consistent(self) -> None:
        problems: list[str] = []
        for i, route in enumerate(self.routes):
            missing = [c for c in route.channels if c not in self.channels]
            if missing:
                problems.append(f"routes[{i}].channels: no such channel {missing}")
        for name, settings in self.events.items():
            missing = [c for c in settings.channels or [] if c not in self.channels]
            if missing:
                problems.append(f"events.{name}.channels: no such channel {missing}")
        if problems:
            known = ", ".join(self.channels) or "none configured"
            raise ValueError("; ".join(problems) + f" (channels: {known})")

    def severity_for(self, event: str) -> NotifySeverity:
        """The event's severity: ``[notify.events.<event>] severity``, else its default."""
        settings = self.events.get(event)
        if settings and settings.severity:
            return settings.severity
        return EVENTS[event].severity

    def route(self, event: str, severity: NotifySeverity) -> list[str]:
        """The enabled channels a message of ``event`` at ``severity`` goes to, in order."""
        settings = self.events.get(event)
        if settings and not settings.enabled:
            return []
        if settings and settings.channels is not None:
            names = list(settings.channels)
        elif self.routes:
            names = [
                c
                for r in self.routes
                if r.severity == severity and (not r.events or event in r.events)
                for c in r.channels
            ]
        else:
            names = [c for c in DEFAULT_ROUTES[severity] if c in self.channels]
        seen: list[str] = []
        for name in names:
            if name not in seen and self.channels[name].enabled:
                seen.append(name)
        return seen
