"""Building shell commands safely: every interpolated value goes through :func:`q`.

Configured commands name the values portal-ops fills in as ``{{name}}``. Double braces
never collide with shell syntax (``${VAR}``, ``$(...)``, ``awk '{ print }'`` and brace
expansion pass through untouched), and a placeholder is only allowed where its quoted value
stays one word: outside single quotes, double quotes, ``$'...'`` and here-documents.
:func:`template_problems` says so when the config is loaded, :func:`fill` again when a
command is built, so no value can reach a shell except as one quoted word.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TemplateError(ValueError):
    """A command template that cannot be filled safely (unknown or quoted placeholder)."""


def q(value: Any) -> str:
    """Quote one value for /bin/sh: the one quoting function every command uses."""
    return shlex.quote(str(value))


def placeholders(template: str) -> list[str]:
    """The ``{{name}}`` placeholders of a template, in order."""
    return [m.group(1) for m in PLACEHOLDER.finditer(template)]


def _quoted_spans(template: str) -> list[tuple[int, int]]:
    """Index ranges of the template that are inside '...', "...", $'...' or a here-doc.

    A small /bin/sh lexer: enough to know whether a placeholder sits where its single
    quotes would be taken literally (or closed early), which is all :func:`fill` needs."""
    spans: list[tuple[int, int]] = []
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c == "\\":
            i += 2
            continue
        if c == "'" or (c == "$" and template.startswith("$'", i)):
            start = i
            i += 2 if c == "$" else 1
            while i < n and template[i] != "'":
                i += 2 if (c == "$" and template[i] == "\\") else 1
            spans.append((start, i + 1))
            i += 1
            continue
        if c == '"':
            start = i
            i += 1
            while i < n and template[i] != '"':
                i += 2 if template[i] == "\\" else 1
            spans.append((start, i + 1))
            i += 1
            continue
        if template.startswith("<<", i) and not template.startswith("<<<", i):
            spans.append((i, n))  # a here-document body: quotes inside it are literal
            break
        i += 1
    return spans


def template_problems(template: str, known: set[str] | frozenset[str]) -> list[str]:
    """Why ``template`` cannot be filled safely with the placeholders in ``known``: empty
    when it can. Used at config load (naming the key) and by :func:`fill`."""
    problems: list[str] = []
    spans = _quoted_spans(template)
    allowed = ", ".join("{{" + k + "}}" for k in sorted(known)) or "none"
    for match in PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name not in known:
            problems.append(f"unknown placeholder {{{{{name}}}}} (known here: {allowed})")
        elif any(a < match.start() < b for a, b in spans):
            problems.append(
                f"placeholder {{{{{name}}}}} is inside quotes or a here-document; write it"
                " bare: its value is quoted already, and surrounding quotes would cancel that"
            )
    return problems


def fill(template: str, **values: Any) -> str:
    """Fill ``{{name}}`` placeholders in a configured command with quoted values.

    Operators write commands like ``php artisan migrate:rollback --step={{steps}}``; the
    values come from portal-ops (paths, counts, file names, backend names) and are always
    quoted, so a value with a space, a quote or ``$(...)`` stays one inert word. Everything
    else in the template is left exactly as written."""
    problems = template_problems(template, frozenset(values))
    if problems:
        raise TemplateError(f"command {template!r}: " + "; ".join(problems))
    return PLACEHOLDER.sub(lambda m: q(values[m.group(1)]), template)


def exports(env: dict[str, str]) -> str:
    """``export K='v' && `` for an environment; keys must be shell identifiers."""
    if not env:
        return ""
    bad = [k for k in env if not IDENTIFIER.match(k)]
    if bad:
        raise TemplateError(f"environment names must be shell identifiers: {bad!r}")
    return "export " + " ".join(f"{k}={q(v)}" for k, v in sorted(env.items())) + " && "


def in_dir(directory: str, command: str, env: dict[str, str] | None = None) -> str:
    """``cd DIR && [export K=V ... &&] COMMAND`` with every value quoted."""
    return f"cd {q(directory)} && " + exports(env or {}) + command
