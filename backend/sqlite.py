"""The one way portal-ops opens its SQLite file (journal, flag store, metric samples).

Several stores share ``journal.db`` and several processes may use it at once (a deploy, a
watcher, the CLI). WAL lets readers run beside the writer; ``BEGIN IMMEDIATE`` makes a
writer that reads first (a schema check, a read-modify-write) wait for the write lock
instead of failing at once with "database is locked" when another connection commits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

BUSY_TIMEOUT = 30.0  # seconds a writer waits for the write lock


def open_database(path: str | Path, *, autocommit: bool = False) -> sqlite_utils.Database:
    """``path`` in WAL mode; ``autocommit`` leaves transactions to the caller (BEGIN ...)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        str(path),
        timeout=BUSY_TIMEOUT,
        check_same_thread=False,
        isolation_level=None if autocommit else "DEFERRED",
    )
    db = sqlite_utils.Database(conn)
    if db.journal_mode != "wal":
        db.enable_wal()
    db.execute("PRAGMA synchronous=NORMAL")
    return db


@contextmanager
def immediate(db: sqlite_utils.Database) -> Iterator[sqlite3.Connection]:
    """A write transaction holding the write lock from its first statement."""
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
