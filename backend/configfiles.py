"""Which portal-ops.toml, and which overlay on top of it.

Discovery (when neither ``--config`` nor ``$PORTAL_OPS_CONFIG`` names a file): the current
directory, then each parent directory, then ``$XDG_CONFIG_HOME/portal-ops/`` (by default
``~/.config/portal-ops/``), as git finds its repository and most CLIs their config.

Overlays: ``-e production`` deep-merges ``portal-ops.production.toml`` (next to the base
file) over it: tables merge key by key, anything else (a value, a list such as ``hosts``)
is replaced. :func:`merge` says which file set each key, for ``config check``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

DEFAULT_NAME = "portal-ops.toml"
ENVIRONMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def search_path(start: Path | None = None) -> list[Path]:
    """Where discovery looks, in order."""
    here = (start or Path.cwd()).resolve()
    places = [d / DEFAULT_NAME for d in (here, *here.parents)]
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    places.append(Path(xdg) / "portal-ops" / DEFAULT_NAME)
    return places


def discover(start: Path | None = None) -> Path | None:
    for place in search_path(start):
        if place.is_file():
            return place
    return None


def overlay_path(base: Path, environment: str) -> Path:
    """``portal-ops.toml`` + ``production`` -> ``portal-ops.production.toml`` beside it."""
    return base.with_name(f"{base.stem}.{environment}{base.suffix or '.toml'}")


def merge(
    base: dict[str, Any],
    over: dict[str, Any],
    sources: dict[str, str],
    source: str,
    prefix: str = "",
) -> dict[str, Any]:
    """``over`` deep-merged onto ``base`` (a new dict); ``sources`` updated for every key
    ``over`` set."""
    out = dict(base)
    for key, value in over.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, sources, source, path + ".")
        else:
            out[key] = value
            for old in [k for k in sources if k == path or k.startswith(path + ".")]:
                del sources[old]
            record(value, sources, source, path)
    return out


def record(value: Any, sources: dict[str, str], source: str, path: str = "") -> None:
    """Every leaf key under ``value`` came from ``source``."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            record(item, sources, source, f"{path}.{key}" if path else str(key))
    elif path:
        sources[path] = source
