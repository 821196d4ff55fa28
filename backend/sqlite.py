"""The one way portal-ops opens its SQLite file (journal, flag store, metric samples).

Several stores share ``journal.db`` and several processes may use it at once (a deploy, a
watcher, the CLI). WAL lets readers run beside the writer; ``BEGIN IMMEDIATE`` makes a
writer that reads first (a schema check, a read-modify-write) wait for the write lock
instead of failing at once with "database is locked" when another connection commits.

The journal, on every deployment's path, uses :func:`connect` (plain sqlite3, rows by
column name); the flag store and the metric samples use sqlite-utils through
:func:`open_database`, imported there: it brings click, pluggy and dateutil (5 MB, 0.05 s)
that a deployment does not need.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils

BUSY_TIMEOUT = 30.0  # seconds a writer waits for the write lock


def connect(path: str | Path, *, autocommit: bool = False) -> sqlite3.Connection:
    """``path`` in WAL mode, rows readable by column name; ``autocommit`` leaves
    transactions to the caller (BEGIN ...)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        str(path),
        timeout=BUSY_TIMEOUT,
        check_same_thread=False,
        isolation_level=None if autocommit else "DEFERRED",
    )
    conn.row_factory = sqlite3.Row
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def open_database(path: str | Path, *, autocommit: bool = False) -> sqlite_utils.Database:
    """:func:`connect`'s connection in sqlite-utils' ``Database``."""
    import sqlite_utils

    conn = connect(path, autocommit=autocommit)
    conn.row_factory = None  # sqlite-utils builds its own rows
    return sqlite_utils.Database(conn)


@contextmanager
def immediate(db: sqlite_utils.Database | sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction holding the write lock from its first statement."""
    conn = db if isinstance(db, sqlite3.Connection) else db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
