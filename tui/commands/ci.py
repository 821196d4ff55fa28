"""What a CI job sees at the end of a run: the exit code, and on GitHub Actions a step
summary (Markdown appended to ``$GITHUB_STEP_SUMMARY``) and an ``::error`` annotation.

Annotations go to stderr, which the Actions runner reads for workflow commands too, so
stdout stays the JSON result alone under ``--json``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from .common import EXIT_OK, exit_code


def conclude(kind: str, body: dict[str, Any]) -> int:
    """The exit code for a deploy/resume/rollback result; tells GitHub Actions when there."""
    code = exit_code(str(body.get("outcome")), body.get("rollback"), body.get("error"), kind)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(step_summary(kind, body, code))
        except OSError as exc:
            print(f"portal-ops: cannot write the step summary {summary}: {exc}", file=sys.stderr)
    if code != EXIT_OK and (os.environ.get("GITHUB_ACTIONS") == "true" or summary):
        sys.stderr.write(annotation(kind, body, code) + "\n")
    return code


def _cell(value: Any) -> str:
    """Table cell text: no newlines or pipes that would break the Markdown table."""
    return " ".join(str(value if value is not None else "").split()).replace("|", "\\|")


def step_summary(kind: str, body: dict[str, Any], code: int) -> str:
    ident = body.get("deployment_id", "?")
    lines = [
        f"### portal-ops {kind} {ident}: {body.get('outcome')} (exit {code})",
        "",
    ]
    if body.get("revision") or body.get("release"):
        lines.append(f"Revision `{body.get('revision')}`, release `{body.get('release')}`, "
                     f"{float(body.get('seconds') or 0):.1f}s.")  # fmt: skip
    if body.get("reason"):
        lines.append(f"Reason: {_cell(body['reason'])}")
    if body.get("error"):
        lines.append(f"Error: {_cell(body['error'])}")
    lines += ["", "| phase | status | seconds | detail |", "|---|---|---|---|"]
    for phase in body.get("phases") or []:
        lines.append(
            f"| {phase.get('number')}. {_cell(phase.get('title'))} | {_cell(phase.get('status'))}"
            f" | {float(phase.get('seconds') or 0):.2f} | {_cell(phase.get('detail'))} |"
        )
    hosts = body.get("hosts") or {}
    if hosts:
        lines += ["", "| host | state | release |", "|---|---|---|"]
        for name, host in hosts.items():
            lines.append(
                f"| {_cell(name)} | {_cell(host.get('state'))} | {_cell(host.get('release'))} |"
            )
    return "\n".join(lines) + "\n\n"


def _escape(text: str) -> str:
    """Workflow command data escaping (%, CR, LF), so a message cannot forge a command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def annotation(kind: str, body: dict[str, Any], code: int) -> str:
    title = f"portal-ops {kind} {body.get('deployment_id', '')}".strip()
    message = f"{body.get('outcome')} (exit {code})"
    if body.get("error"):
        message += f": {body['error']}"
    title = _escape(title).replace(",", "%2C").replace(":", "%3A")
    return f"::error title={title}::{_escape(message)}"
