"""Where portal-ops keeps its state on the machine it runs on (the bastion)."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The state directory: journal, flag store, reports.

    Order: an explicit path (config ``[state] dir`` or a test), ``$PORTAL_OPS_STATE_DIR``,
    then the XDG state home (``$XDG_STATE_HOME/portal-ops``, default ``~/.local/state``).
    """
    if override:
        path = Path(override).expanduser()
    elif os.environ.get("PORTAL_OPS_STATE_DIR"):
        path = Path(os.environ["PORTAL_OPS_STATE_DIR"]).expanduser()
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(base).expanduser() / "portal-ops"
    path.mkdir(parents=True, exist_ok=True)
    return path
