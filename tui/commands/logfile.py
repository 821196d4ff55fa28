"""The log file in the state dir (``portal-ops.log``, rotated), and ``--debug`` on stderr.

Every command logs there at INFO (DEBUG with ``--debug``), so what happened in a CI job
or on an operator's laptop can be read afterwards; the terminal stays quiet unless asked.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys

from backend.paths import state_dir

LOG_NAME = "portal-ops.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(debug: bool = False, command: str | None = None) -> None:
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "portal_ops", False)]:
        root.removeHandler(old)  # called again in one process (tests, the TUI): no doubles
        old.close()
    level = logging.DEBUG if debug else logging.INFO
    root.setLevel(level)
    try:
        directory = state_dir()
        directory.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            directory / LOG_NAME, maxBytes=5_000_000, backupCount=3, encoding="utf-8"
        )
    except OSError as exc:  # a read-only home must not stop a deploy
        print(f"portal-ops: no log file ({exc})", file=sys.stderr)
    else:
        _add(root, handler, level)
    if debug:
        _add(root, logging.StreamHandler(sys.stderr), level)
    if not debug:
        logging.getLogger("asyncssh").setLevel(logging.WARNING)  # a line per channel
    # the command's name only: its arguments may hold what must not be written down
    logging.getLogger("portal_ops").debug("command %s", command or "(none)")


def _add(root: logging.Logger, handler: logging.Handler, level: int) -> None:
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(level)
    handler.portal_ops = True  # type: ignore[attr-defined]
    root.addHandler(handler)
