"""The one TOML writer of the demo (tomllib only reads): the sandbox's portal-ops.toml and
the configs tests write."""

from __future__ import annotations

from typing import Any


def dump_toml(data: dict[str, Any]) -> str:
    """The config as TOML (tomli-w: valid for any key or string, non-ASCII and \\x7f too)."""
    import tomli_w

    return tomli_w.dumps(data)
