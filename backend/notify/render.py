"""Messages from templates: one jinja2 file per event renders every format a channel needs.

A template renders in parts (``title``, ``summary``, ``text``, ``html``, ``slack``): the
layout in ``_base.j2`` builds the long formats from the short ones, so an event template
only says what is specific to it. Files in ``[notify] templates_dir`` are looked up first;
an override can extend the shipped one as ``default/<event>.j2``. A broken override never
loses a message: the shipped template is used and the error is reported with it.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from .catalog import EVENTS, SEVERITY_LABELS, NotifySeverity

BUILTIN_DIR = Path(__file__).parent / "templates"
PARTS = ("title", "summary", "text", "html", "slack")

ICONS: dict[NotifySeverity, str] = {
    NotifySeverity.SEV1: "🔴",
    NotifySeverity.SEV2: "🟠",
    NotifySeverity.SEV3: "🟡",
    NotifySeverity.INFO: "🔵",
}

# The context keys the engine and the CLI fill in; templates may rely on each existing.
CONTEXT_KEYS = (
    "deployment_id",
    "target",
    "revision",
    "release",
    "operator",
    "outcome",
    "hosts",
    "durations",
    "duration",
    "reason",
    "message",
    "trigger",
    "links",
    "status",  # "triggered" | "resolved" | None: the alarm state (bridge.py)
    "dedup_key",  # one per deployment, for incident tools
)


@dataclass(frozen=True)
class Message:
    """One rendered notification, the same for every channel it is routed to."""

    event: str
    severity: NotifySeverity
    title: str
    summary: str
    text: str
    html: str
    slack: str
    facts: list[tuple[str, str]]
    links: dict[str, str]
    context: dict[str, Any]
    timestamp: str
    template_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def seconds(value: Any) -> str:
    """``75.3`` -> ``1m 15s``: durations as people read them."""
    try:
        total = float(value)
    except (TypeError, ValueError):
        return str(value)
    if total < 60:
        return f"{total:.1f}s" if total < 10 else f"{total:.0f}s"
    minutes, secs = divmod(round(total), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def mrkdwn(value: Any) -> str:
    """Slack treats ``& < >`` as markup (``<!channel>`` pings everyone): escape them."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _operator(value: Any) -> str:
    if isinstance(value, Mapping):
        user, host, via = value.get("user", ""), value.get("host", ""), value.get("via", "")
        text = f"{user}@{host}" if host else str(user)
        return text + (f" ({via})" if via else "")
    return "" if value is None else str(value)


def _trigger(value: Any) -> str:
    if isinstance(value, Mapping):
        rule = value.get("rule") or value.get("name") or value.get("kind") or "rule"
        detail = value.get("detail") or value.get("message") or ""
        return f"{rule}: {detail}" if detail else str(rule)
    return "" if value is None else str(value)


def _hosts(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, Mapping):
        return [str(k) for k in value]
    if isinstance(value, str):
        return [value]
    return [h.get("name", str(h)) if isinstance(h, Mapping) else str(h) for h in value]


def _durations(value: Any) -> dict[str, float]:
    """Phase -> seconds, from a dict or a list of ``{phase|name|title, seconds}``."""
    out: dict[str, float] = {}
    items: Any = value.items() if isinstance(value, Mapping) else value or []
    for item in items:
        if isinstance(item, tuple):
            name, secs = item
        elif isinstance(item, Mapping):
            name = item.get("phase") or item.get("name") or item.get("title")
            secs = item.get("seconds")
        else:
            continue
        try:
            out[str(name)] = float(secs)
        except (TypeError, ValueError):
            continue
    return out


def build_context(
    event: str,
    severity: NotifySeverity,
    raw: Mapping[str, Any] | None,
    links: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The template context: every documented key present, values in display form."""
    raw = dict(raw or {})
    ctx: dict[str, Any] = {key: raw.get(key) for key in CONTEXT_KEYS}
    ctx["operator"] = _operator(raw.get("operator"))
    ctx["trigger"] = _trigger(raw.get("trigger"))
    ctx["hosts"] = _hosts(raw.get("hosts"))
    ctx["durations"] = _durations(raw.get("durations"))
    if ctx["duration"] is None and ctx["durations"]:
        ctx["duration"] = sum(ctx["durations"].values())
    fill = {
        "deployment_id": ctx["deployment_id"] or "",
        "target": ctx["target"] or "",
        "revision": ctx["revision"] or "",
        "event": event,
    }
    # A link whose placeholder has no value (no deployment yet) would lead nowhere: left out.
    formatted = {
        name: url.format_map(fill)
        for name, url in (links or {}).items()
        if all(fill.get(f) for _, f, _, _ in string.Formatter().parse(url) if f)
    }
    formatted.update({str(k): str(v) for k, v in (raw.get("links") or {}).items()})
    ctx["links"] = formatted
    ctx.update(
        event=event,
        event_description=EVENTS[event].description if event in EVENTS else event,
        severity=str(severity),
        severity_label=SEVERITY_LABELS[severity],
        icon=ICONS[severity],
        extra={k: v for k, v in raw.items() if k not in CONTEXT_KEYS},
    )
    return ctx


def facts(ctx: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The label/value pairs every format shows (the Slack fields, the e-mail table)."""
    out: list[tuple[str, str]] = []

    def add(label: str, value: Any) -> None:
        if value not in (None, "", [], {}):
            out.append((label, str(value)))

    add("Deployment", ctx.get("deployment_id"))
    add("Target", ctx.get("target"))
    add("Revision", ctx.get("revision"))
    add("Release", ctx.get("release"))
    add("Operator", ctx.get("operator"))
    add("Outcome", ctx.get("outcome"))
    add("Severity", ctx.get("severity_label"))
    add("Hosts", ", ".join(ctx.get("hosts") or []))
    if ctx.get("duration") is not None:
        add("Duration", seconds(ctx["duration"]))
    add("Trigger", ctx.get("trigger"))
    return out


class Renderer:
    """Renders an event's template; overrides first, the shipped defaults behind them."""

    def __init__(self, templates_dir: str | Path | None = None) -> None:
        self.templates_dir = Path(templates_dir) if templates_dir else None
        self._builtin = self._environment(None)
        self._env = self._environment(self.templates_dir) if self.templates_dir else self._builtin

    @staticmethod
    def _environment(override: Path | None) -> jinja2.Environment:
        builtin = jinja2.FileSystemLoader(str(BUILTIN_DIR))
        loaders: list[jinja2.BaseLoader] = []
        if override is not None:
            loaders.append(jinja2.FileSystemLoader(str(override)))
        loaders += [builtin, jinja2.PrefixLoader({"default": builtin})]
        env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.ChainableUndefined,
            autoescape=False,  # the html part turns autoescaping on for itself
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        env.filters["seconds"] = seconds
        env.filters["mrkdwn"] = mrkdwn
        return env

    def problems(self) -> list[str]:
        if self.templates_dir and not self.templates_dir.is_dir():
            return [f"notify.templates_dir: {self.templates_dir} is not a directory"]
        return []

    def render(self, event: str, ctx: dict[str, Any]) -> Message:
        error: str | None = None
        try:
            parts = self._parts(self._env, event, ctx)
        except jinja2.TemplateError as exc:
            if self._env is self._builtin:
                raise
            error = (
                f"template override for {event} failed ({type(exc).__name__}: {exc});"
                " used the default"
            )
            parts = self._parts(self._builtin, event, ctx)
        severity = NotifySeverity(ctx["severity"])
        return Message(
            event=event,
            severity=severity,
            title=" ".join(parts["title"].split()),
            summary=parts["summary"].strip(),
            text=parts["text"].strip() + "\n",
            html=parts["html"].strip() + "\n",
            slack=parts["slack"].strip(),
            facts=ctx["facts"],
            links=dict(ctx["links"]),
            context=ctx,
            timestamp=ctx["timestamp"],
            template_error=error,
        )

    @staticmethod
    def _parts(env: jinja2.Environment, event: str, ctx: dict[str, Any]) -> dict[str, str]:
        template = env.get_template(f"{event}.j2")
        return {part: template.render(ctx, part=part) for part in PARTS}


def render_message(
    renderer: Renderer,
    event: str,
    severity: NotifySeverity,
    raw: Mapping[str, Any] | None,
    links: Mapping[str, str] | None = None,
) -> Message:
    """Context, facts and timestamp filled in, then rendered: the one way messages are made."""
    ctx = build_context(event, severity, raw, links)
    ctx["facts"] = facts(ctx)
    ctx["timestamp"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return renderer.render(event, ctx)
