"""``portal-ops validate pre|post``: the scored checks, a table, the decision, an exit code.

Exit codes: 0 go, 1 no-go, 2 usage or config error (an unknown deployment id included).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click

from backend.config import Config
from backend.events import Kind

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    checked_id,
    config_option,
    fail,
    load_or_exit,
    open_journal,
    remember_json,
)

_COLOURS = {"pass": "green", "warn": "yellow", "fail": "red", "error": "magenta", "skipped": None}


def _json_option(func: Any) -> Any:
    return click.option(
        "--json",
        "json_path",
        metavar="[FILE]",
        is_flag=False,
        flag_value="-",
        callback=_remember_json_path,
        help="The JSON report on stdout (the table then goes to stderr), or written to FILE.",
    )(func)


def _remember_json_path(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """``--json`` alone is JSON mode (errors as JSON too); ``--json FILE`` only writes FILE."""
    remember_json(ctx, param, value == "-")
    return value


def _only_option(func: Any) -> Any:
    return click.option(
        "--only", metavar="IDS", help="Run only these checks, comma-separated (e.g. P06,P07)."
    )(func)


@click.group()
def validate() -> None:
    """Pre- and post-deployment checks: weighted score and go/no-go (exit 0 go, 1 no-go)."""


@validate.command("pre")
@_json_option
@_only_option
@config_option
def pre(json_path: str | None, only: str | None, config_path: str | None) -> None:
    """Run the 15 pre-deployment checks (P01..P15) against the configured hosts."""
    config = load_or_exit(config_path)
    _run(config, "pre", json_path, only, None, {})


@validate.command("post")
@click.argument("deploy_id", required=False, callback=checked_id)
@_json_option
@_only_option
@config_option
def post(
    deploy_id: str | None, json_path: str | None, only: str | None, config_path: str | None
) -> None:
    """Run the 18 post-deployment checks (Q01..Q18) for DEPLOY_ID (default: the latest)."""
    config = load_or_exit(config_path)
    expected = _deployment(config, deploy_id)
    _run(config, "post", json_path, only, expected.pop("deployment_id"), expected)


def _deployment(config: Config, deploy_id: str | None) -> dict[str, Any]:
    """What the post checks expect to find live, from the journal: release, revision and
    the switch time (the start of phase "switch"; the deployment's start if it has none)."""
    journal = open_journal(config)
    try:
        if deploy_id:
            row = journal.get_deployment(deploy_id)
            if row is None:
                known = ", ".join(journal.deployment_ids()[-5:]) or "none yet"
                fail(
                    f"unknown deployment id {deploy_id!r} (recent: {known}; see portal-ops history)"
                )
        else:
            row = journal.latest_deployment(target=config.portal.name)
            if row is None:
                click.echo(
                    "portal-ops: no deployment in the journal; checking what is live without an"
                    " expected release",
                    err=True,
                )
                return {"deployment_id": None, "release": None, "revision": None, "since": None}
        since = row.get("started_at")
        revision = (row.get("summary") or {}).get("revision") or row.get("revision") or None
        for event in journal.events(row["id"]):
            if event.kind == Kind.PHASE_STARTED and event.phase == "switch":
                since = event.ts
                break
        return {
            "deployment_id": row["id"],
            "release": row.get("release") or None,
            "revision": revision,
            "since": since,
        }
    finally:
        journal.close()


def _run(
    config: Config,
    phase: str,
    json_path: str | None,
    only: str | None,
    deployment_id: str | None,
    expected: dict[str, Any],
) -> None:
    from backend.checks.report import write
    from backend.checks.runner import run_validation, specs_for

    ids = [i.strip().upper() for i in only.split(",") if i.strip()] if only else None
    known = {s.id for s in specs_for(phase)}  # type: ignore[arg-type]
    if ids is not None:
        bad = [i for i in ids if i not in known]
        if bad or not ids:
            first, last = min(known), max(known)
            fail(
                f"--only: unknown {phase} check id(s) {', '.join(bad) or '(none given)'};"
                f" use {first}..{last}"
            )
    out = sys.stderr if json_path == "-" else sys.stdout
    target = f" for {deployment_id}" if deployment_id else ""
    click.echo(
        f"Running {len(ids) if ids else len(known)} {phase}-deployment checks{target}"
        f" on {len(config.hosts)} host(s)...",
        file=sys.stderr,
    )
    report = asyncio.run(
        run_validation(config, phase, deployment_id=deployment_id, only=ids, **expected)  # type: ignore[arg-type]
    )
    click.echo(render(report.to_dict()), file=out)
    if json_path == "-":
        click.echo(report.to_json())
    elif json_path:
        try:
            write(report, json_path)
        except OSError as exc:
            fail(f"cannot write the JSON report to {json_path}: {exc.strerror}")
        click.echo(f"JSON report written to {json_path}", file=out)
    sys.exit(EXIT_OK if report.go else EXIT_FAILED)


def _cell(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render(report: dict[str, Any], colour: bool | None = None) -> str:
    """The report as a table, the score and decision, and the reasons."""
    rows = [("ID", "CHECK", "HOST", "VALUE", "THRESHOLD", "STATUS", "TIME")]
    for c in report["checks"]:
        value = "" if c["value"] is None else f"{c['value']}{' ' + c['unit'] if c['unit'] else ''}"
        rows.append(
            (
                c["id"] + ("*" if c["critical"] else ""),
                c["title"],
                c["host"] or "-",
                value,
                c["threshold"],
                c["status"],
                f"{c['duration_ms'] / 1000:.2f}s",
            )
        )
    limits = (4, 40, 12, 18, 34, 7, 7)
    widths = [min(limit, max(len(r[i]) for r in rows)) for i, limit in enumerate(limits)]
    lines = []
    for n, row in enumerate(rows):
        cells = [_cell(text, widths[i]).ljust(widths[i]) for i, text in enumerate(row)]
        if n and colour is not False and _COLOURS.get(row[5]):
            cells[5] = click.style(cells[5], fg=_COLOURS[row[5]], bold=row[5] != "pass")
        lines.append("  ".join(cells).rstrip())
    notes = [
        f"  {c['id']} {c['host'] or ''}: {c['message']}".replace(" :", ":")
        for c in report["checks"]
        if c["status"] in ("fail", "error", "warn")
    ]
    decision = report["decision"].upper()
    style = {"fg": "green" if report["decision"] == "go" else "red", "bold": True}
    verdict = click.style(decision, **style) if colour is not False else decision  # type: ignore[arg-type]
    counts = ", ".join(f"{n} {s}" for s, n in report["counts"].items() if n)
    lines += ["", "* critical: a failure is no-go whatever the score"]
    if notes:
        lines += ["", "Findings:", *notes]
    skipped = [
        f"  {c['id']}: {c['message']}"
        for c in report["checks"]
        if c["status"] == "skipped" and not c.get("disabled")
    ]
    if skipped:
        lines += ["", "Skipped (not configured or not applicable):", *skipped]
    lines += [
        "",
        f"Score {report['score']:g}/100 (pass score {report['pass_score']:g}; {counts})",
        f"Decision: {verdict}",
    ]
    lines += [f"  - {r}" for r in report["reasons"][:8]]
    if report.get("disabled"):
        lines += [f"Disabled: {d['id']} ({d['reason']})" for d in report["disabled"]]
    return "\n".join(lines)
