"""``portal-ops notify EVENT [MESSAGE]``: the seed's send-deployment-notification.sh.

Sends one event's message to the channels its severity routes to (or ``--channel``), waits
for the deliveries, and exits 0 when all succeeded, 1 when any failed, 2 on a usage or
config problem (then nothing is sent). ``--dry-run`` prints every routed message as its
channel would send it. Secrets never reach the output: targets show only the variable
name and host.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from backend.config import Config
from backend.events import EventBus, Kind
from backend.identity import current_operator
from backend.journal import Journal
from backend.notify import EVENTS, DeliveryResult, Notifier, NotifySeverity, Preview
from backend.notify.catalog import event_names

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    checked_id,
    checked_text,
    config_option,
    fail,
    json_option,
    load_or_exit,
    open_journal,
    print_json,
)

DEFAULT_OUTCOME = {"deployment-success": "succeeded", "deployment-failed": "failed"}


@click.command("notify")
@click.argument("event", metavar="EVENT")
@click.argument("message", required=False, callback=checked_text)
@click.option(
    "--severity",
    type=click.Choice([s.value for s in NotifySeverity]),
    help="Override the event's severity (sev1 complete failure, sev2 major, sev3 minor, info).",
)
@click.option(
    "--deployment-id",
    callback=checked_id,
    help="Fill in target, revision, operator, hosts and durations from the journal.",
)
@click.option(
    "--channel",
    "channels",
    multiple=True,
    metavar="NAME",
    help="Send only to this channel (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Render every routed message; send nothing.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    help="Seconds to wait for deliveries (default: [notify] drain_timeout).",
)
@json_option
@config_option
def notify(
    event: str,
    message: str | None,
    severity: str | None,
    deployment_id: str | None,
    channels: tuple[str, ...],
    dry_run: bool,
    timeout: float | None,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Send a deployment notification: EVENT is one of pre-deployment, deployment-success,
    deployment-failed, rollback, emergency (also rollback-started, rollback-finished,
    incident, check-failed). MESSAGE is shown in it, e.g. emergency "Critical issue"."""
    if event not in EVENTS:
        fail(f"unknown event {event!r}; allowed: {event_names()}")
    config = load_or_exit(config_path)
    if not config.notify.enabled:
        _finish(
            as_json,
            {"event": event, "ok": True, "sent": False, "detail": "notifications are disabled"},
            "notifications are disabled ([notify] enabled = false); nothing sent",
            EXIT_OK,
        )
    unknown = [c for c in channels if c not in config.notify.channels]
    if unknown:
        known = ", ".join(config.notify.channels) or "none"
        fail(f"--channel: no such channel {unknown}; configured: {known}")

    # A dry run journals nothing, but may read a deployment's facts from the journal.
    journal = open_journal(config) if deployment_id or not dry_run else None
    try:
        context = _context(config, event, message, deployment_id, journal)
        bus = EventBus()
        if journal is not None and not dry_run:
            bus.set_stamper(journal.record)
        notifier = Notifier.from_config(config, bus)
        level = notifier.severity(event, severity)
        targets = list(channels) or notifier.route(event, level)
        if not targets:
            fail(
                f"no channel is routed for {event} at {level}: name channels deployments/incidents/"
                "leadership under [notify.channels], or add [[notify.routes]] for this severity"
            )
        problems = notifier.renderer.problems() + [
            notifier.masker(notifier.channels[c].problem)
            for c in targets
            if notifier.channels[c].problem
        ]
        if problems and not dry_run:
            fail("cannot send; nothing was sent:\n  - " + "\n  - ".join(problems))
        if dry_run:
            rendered, previews = notifier.preview(event, context, level, targets)
            _print_previews(as_json, event, rendered.title, str(level), previews, problems)
            return
        results = asyncio.run(
            _deliver(notifier, event, context, level, targets, deployment_id, timeout)
        )
    finally:
        if journal is not None:
            journal.close()
    ok = bool(results) and all(r.ok for r in results)
    _print_results(as_json, event, str(level), targets, results)
    raise SystemExit(EXIT_OK if ok else EXIT_FAILED)


async def _deliver(
    notifier: Notifier,
    event: str,
    context: dict[str, Any],
    severity: NotifySeverity,
    targets: list[str],
    deployment_id: str | None,
    timeout: float | None,
) -> list[DeliveryResult]:
    notifier.send(event, context, severity, channels=targets, deployment_id=deployment_id)
    return await notifier.aclose(timeout)


def _context(
    config: Config,
    event: str,
    message: str | None,
    deployment_id: str | None,
    journal: Journal | None,
) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "target": config.portal.name,
        "revision": config.portal.revision,
        "operator": current_operator().to_dict(),
        "hosts": [h.name for h in config.hosts],
        "message": message,
        "outcome": DEFAULT_OUTCOME.get(event),
    }
    if deployment_id:
        row = journal.get_deployment(deployment_id) if journal else None
        if row is None:
            fail(
                f"--deployment-id: no deployment {deployment_id!r} in the journal"
                " (see `portal-ops history`)"
            )
        ctx.update(
            deployment_id=deployment_id,
            target=row.get("target") or ctx["target"],
            revision=row.get("revision") or ctx["revision"],
            release=row.get("release") or None,
            hosts=row.get("hosts") or ctx["hosts"],
        )
        if isinstance(row.get("operator"), dict) and row["operator"].get("user"):
            ctx["operator"] = row["operator"]
        if row.get("outcome"):
            ctx["outcome"] = row["outcome"]
        if row.get("finished_at") and row.get("started_at"):
            ctx["duration"] = row["finished_at"] - row["started_at"]
        assert journal is not None
        durations = {
            e.phase: float(e.data["seconds"])
            for e in journal.events(deployment_id)
            if e.kind == Kind.PHASE_FINISHED
            and e.phase
            and isinstance(e.data.get("seconds"), int | float)
        }
        if durations:
            ctx["durations"] = durations
    return ctx


def _finish(as_json: bool, data: dict[str, Any], text: str, code: int) -> None:
    if as_json:
        print_json(data)
    else:
        click.echo(text)
    raise SystemExit(code)


def _print_previews(
    as_json: bool,
    event: str,
    title: str,
    severity: str,
    previews: list[Preview],
    problems: list[str],
) -> None:
    if as_json:
        print_json(
            {
                "event": event,
                "severity": severity,
                "title": title,
                "dry_run": True,
                "channels": [p.channel for p in previews],
                "problems": problems,
                "previews": [p.to_dict() for p in previews],
            }
        )
        return
    names = ", ".join(p.channel for p in previews)
    click.echo(f"notify {event} ({severity}) -> {names}  [dry run: nothing sent]")
    for p in previews:
        click.echo("")
        state = "" if p.ready else f"  [would fail: {p.problem}]"
        click.echo(click.style(f"== {p.channel} ({p.kind}) {p.target}{state}", bold=True))
        if p.kind == "email":
            r = p.rendered
            click.echo(f"From: {r['from']}\nTo: {', '.join(r['to'])}\nSubject: {r['subject']}\n")
            click.echo(r["text"].rstrip())
            click.echo(f"[+ an HTML part, {len(r['html'])} characters]")
        elif p.kind == "apprise":
            click.echo(f"{p.rendered['title']}\n\n{p.rendered['body'].rstrip()}")
        elif p.kind == "slack":
            payload = p.rendered["json"]
            click.echo(payload["text"].rstrip())
            blocks = ", ".join(b["type"] for b in payload["blocks"])
            click.echo(f"[+ Block Kit: {blocks}; the whole payload with --json]")
        else:
            click.echo(json.dumps(p.rendered.get("json"), indent=2, ensure_ascii=False))
            if p.rendered.get("headers"):
                click.echo(f"[headers: {', '.join(p.rendered['headers'])}]")


def _print_results(
    as_json: bool, event: str, severity: str, targets: list[str], results: list[DeliveryResult]
) -> None:
    ok = bool(results) and all(r.ok for r in results)
    if as_json:
        print_json(
            {
                "event": event,
                "severity": severity,
                "dry_run": False,
                "ok": ok,
                "channels": targets,
                "deliveries": [r.to_dict() for r in results],
            }
        )
        return
    for r in results:
        mark = click.style("ok  ", fg="green") if r.ok else click.style("FAIL", fg="red")
        tries = f"{r.attempts} attempt{'s' if r.attempts != 1 else ''}"
        click.echo(f"{mark} {r.channel} ({r.kind}): {r.detail} [{tries}]")
    sent = sum(r.ok for r in results)
    click.echo(f"{event} ({severity}): delivered to {sent} of {len(targets)} channel(s)")
