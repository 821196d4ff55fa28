"""Building shell commands safely: every interpolated value is quoted."""

from __future__ import annotations

import shlex
import string
from typing import Any


def q(value: Any) -> str:
    """Quote one value for /bin/sh."""
    return shlex.quote(str(value))


def fill(template: str, **values: Any) -> str:
    """Fill ``{name}`` placeholders in a configured command with quoted values.

    Operators write commands like ``php artisan migrate:rollback --step={steps}``; the values
    come from portal-ops (paths, counts, file names) and are always quoted, so a release path
    with a space or a quote cannot break out of its argument.
    """
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    missing = names - values.keys()
    if missing:
        raise KeyError(f"unknown placeholder(s) {sorted(missing)} in command {template!r}")
    return template.format(**{k: q(v) for k, v in values.items() if k in names})


def in_dir(directory: str, command: str, env: dict[str, str] | None = None) -> str:
    """``cd DIR && [env K=V ...] sh -c COMMAND``-style composition with quoting."""
    prefix = f"cd {q(directory)} && "
    if env:
        prefix += "export " + " ".join(f"{k}={q(v)}" for k, v in sorted(env.items())) + " && "
    return prefix + command
