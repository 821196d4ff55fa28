"""The one TOML writer of the demo (tomllib only reads): the sandbox's portal-ops.toml and
the configs tests write. Plain tables, arrays of tables, inline values; nothing more."""

from __future__ import annotations

import json
from typing import Any


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def dump_toml(data: dict[str, Any]) -> str:
    """Top-level tables and arrays of tables, scalars and inline values inside them."""
    out: list[str] = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict | list) or _inline(v)}
    for key, value in scalars.items():
        out.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in data.items():
        if key in scalars:
            continue
        if isinstance(value, dict):
            out.append(f"\n[{_toml_key(key)}]")
            out += _table_body(value, key)
        else:
            for item in value:
                out.append(f"\n[[{_toml_key(key)}]]")
                out += _table_body(item, key)
    return "\n".join(out).lstrip("\n") + "\n"


def _inline(value: Any) -> bool:
    return not (
        isinstance(value, dict)
        or (isinstance(value, list) and value and all(isinstance(v, dict) for v in value))
    )


def _table_body(table: dict[str, Any], prefix: str) -> list[str]:
    lines = [
        f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)
    ]
    for key, value in table.items():
        if isinstance(value, dict):
            lines.append(f"\n[{prefix}.{_toml_key(key)}]")
            lines += _table_body(value, f"{prefix}.{_toml_key(key)}")
    return lines
