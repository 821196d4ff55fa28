"""The journal: every event, as it happens, in SQLite (plain sqlite3, WAL).

It is this machine's record that ``history``, ``show`` and ``watch`` read, and a cache of
what the hosts hold (``resume`` and ``rollback`` read the hosts first). One file in the
state directory; several processes may read it while one writes.

A running engine writes in batches off the event loop (:meth:`Journal.batch_writes`): a
writer thread commits whatever queued up while it committed the last batch, so a command
printing thousands of lines costs the loop a queue put per line, not an SQLite commit. A
SIGKILL loses at most the batch being written (milliseconds of events); what a resume or
a rollback needs was written to the hosts before each irreversible step. Reads through the
same journal flush first, so a process always reads its own writes.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import sqlite3
import threading
import time
import weakref
from dataclasses import replace
from pathlib import Path
from typing import Any

from .events import Event, Kind
from .paths import state_dir
from .sqlite import connect, immediate

UNFINISHED = "running"

# the schema sqlite-utils created for the journal's first years, kept as it was: journals
# written before and after read alike
SCHEMA = """
CREATE TABLE IF NOT EXISTS "deployments" (
   "id" TEXT PRIMARY KEY,
   "target" TEXT,
   "kind" TEXT,
   "revision" TEXT,
   "release" TEXT,
   "previous_release" TEXT,
   "operator" TEXT,
   "started_at" REAL,
   "finished_at" REAL,
   "status" TEXT,
   "outcome" TEXT,
   "dry_run" INTEGER,
   "options" TEXT,
   "hosts" TEXT,
   "summary" TEXT,
   "pid" INTEGER
);
CREATE INDEX IF NOT EXISTS "idx_deployments_target_started_at"
    ON "deployments" ("target", "started_at");
CREATE TABLE IF NOT EXISTS "events" (
   "seq" INTEGER PRIMARY KEY,
   "deployment_id" TEXT,
   "ts" REAL,
   "kind" TEXT,
   "run" TEXT,
   "phase" TEXT,
   "host" TEXT,
   "data" TEXT
);
CREATE INDEX IF NOT EXISTS "idx_events_deployment_id_seq"
    ON "events" ("deployment_id", "seq");
"""
# kind: deploy | rollback-only; status: running | finished; outcome: succeeded | failed |
# rolled_back | partial | paused; options: JSON (force, skip_validation, ...); hosts: JSON
# list of host names; summary: JSON written at the end
BATCH_SECONDS = 0.05  # how long the writer gathers more writes after the first of a batch
BATCH_MAX = 1000  # writes per commit at most

log = logging.getLogger(__name__)
_OPEN: weakref.WeakSet[Journal] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    """A process ending normally keeps every event it emitted."""
    for journal in list(_OPEN):
        journal.flush(timeout=10)


class Journal:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else state_dir() / "journal.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = connect(self.path)
        with immediate(self.db):
            self._ensure_schema()
        self._writer: _Writer | None = None
        self.commits = 0  # batches the writer committed (a test's measure of batching)

    def batch_writes(self) -> None:
        """From now on, writes go to a writer thread (see the module's docstring); events
        are handed on before they have a ``seq``."""
        if self._writer is None:
            self._writer = _Writer(self)
            _OPEN.add(self)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every write queued so far is committed."""
        if self._writer is not None:
            self._writer.flush(timeout)

    def _ensure_schema(self) -> None:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self.db.execute(statement)

    # -- writing --------------------------------------------------------------------------

    def record(self, event: Event) -> Event:
        """Write one event and keep the deployments table in step with it (queued, with
        ``seq`` 0, when writes are batched)."""
        if self._writer is not None:
            self._writer.put(self._write_event, event)
            return event
        with self.db:
            return self._write_event(self.db, event)

    def _write_event(self, db: sqlite3.Connection, event: Event) -> Event:
        cursor = db.execute(
            "INSERT INTO events (deployment_id, ts, kind, run, phase, host, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                event.deployment_id,
                event.ts,
                str(event.kind),
                event.run,
                event.phase,
                event.host,
                json.dumps(event.data, default=str),
            ],
        )
        seq = cursor.lastrowid or 0
        if event.deployment_id and event.kind == Kind.DEPLOYMENT_STARTED and event.run == "deploy":
            self._insert_deployment(db, event)
        return replace(event, seq=seq)

    def _insert_deployment(self, db: sqlite3.Connection, event: Event) -> None:
        d = event.data
        _upsert_deployment(
            db,
            {
                "id": event.deployment_id,
                "target": d.get("target", ""),
                "kind": d.get("kind", "deploy"),
                "revision": d.get("revision", ""),
                "release": d.get("release", ""),
                "previous_release": json.dumps(d.get("previous_release", {})),
                "operator": json.dumps(d.get("operator", {})),
                "started_at": event.ts,
                "status": UNFINISHED,
                "outcome": "",
                "dry_run": int(bool(d.get("dry_run"))),
                "options": json.dumps(d.get("options", {})),
                "hosts": json.dumps(d.get("hosts", [])),
                "summary": "{}",
                "pid": d.get("pid", 0),
            },
        )

    def update_deployment(self, deployment_id: str, **fields: Any) -> None:
        encoded = {
            k: json.dumps(v, default=str) if isinstance(v, dict | list) else v
            for k, v in fields.items()
        }
        if self._writer is not None:
            self._writer.put(_update_deployment, deployment_id, encoded)
            return
        with self.db:
            _update_deployment(self.db, deployment_id, encoded)

    def finish_deployment(self, deployment_id: str, outcome: str, summary: dict[str, Any]) -> None:
        self.update_deployment(
            deployment_id,
            status="finished",
            outcome=outcome,
            finished_at=time.time(),
            summary=summary,
        )

    # -- reading --------------------------------------------------------------------------

    def deployment_ids(self) -> list[str]:
        self.flush()
        return [r["id"] for r in self.db.execute("SELECT id FROM deployments")]

    def get_deployment(self, deployment_id: str) -> dict[str, Any] | None:
        self.flush()
        rows = list(self.db.execute("SELECT * FROM deployments WHERE id = ?", [deployment_id]))
        return _decode_deployment(rows[0]) if rows else None

    def list_deployments(self, limit: int = 20, target: str | None = None) -> list[dict[str, Any]]:
        self.flush()
        sql = "SELECT * FROM deployments"
        args: list[Any] = []
        if target:
            sql += " WHERE target = ?"
            args.append(target)
        sql += " ORDER BY started_at DESC LIMIT ?"
        args.append(limit)
        return [_decode_deployment(r) for r in self.db.execute(sql, args)]

    def latest_deployment(
        self, target: str | None = None, real_only: bool = True
    ) -> dict[str, Any] | None:
        for row in self.list_deployments(limit=50, target=target):
            if real_only and row["dry_run"]:
                continue
            return row
        return None

    def unfinished(self, target: str | None = None) -> list[dict[str, Any]]:
        self.flush()
        sql = "SELECT * FROM deployments WHERE status = ? AND dry_run = 0"
        args: list[Any] = [UNFINISHED]
        if target:
            sql += " AND target = ?"
            args.append(target)
        return [_decode_deployment(r) for r in self.db.execute(sql + " ORDER BY started_at", args)]

    def abandoned(self, target: str | None = None) -> list[dict[str, Any]]:
        """Unfinished deployments whose process is gone (killed, SSH to the bastion lost)."""
        return [d for d in self.unfinished(target) if not process_alive(d.get("pid"))]

    def events(
        self, deployment_id: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        self.flush()
        sql = "SELECT * FROM events WHERE seq > ?"
        args: list[Any] = [after_seq]
        if deployment_id:
            sql += " AND deployment_id = ?"
            args.append(deployment_id)
        sql += " ORDER BY seq"
        if limit:
            sql += " LIMIT ?"
            args.append(limit)
        return [_decode_event(r) for r in self.db.execute(sql, args)]

    def last_checkpoint(self, deployment_id: str) -> dict[str, Any]:
        """The deployment's last checkpoint, read alone (not every event of the run)."""
        self.flush()
        rows = list(
            self.db.execute(
                "SELECT data FROM events WHERE deployment_id = ? AND kind = ? AND data LIKE ?"
                " ORDER BY seq DESC LIMIT 1",
                [deployment_id, str(Kind.HOST_STATE), '%"state": "checkpoint"%'],
            )
        )
        if not rows:
            return {}
        return dict(json.loads(rows[0]["data"] or "{}").get("checkpoint") or {})

    def phase_numbers(self, deployment_id: str, statuses: tuple[str, ...]) -> list[int]:
        """Numbers of the deploy phases that finished with one of ``statuses``."""
        self.flush()
        rows = self.db.execute(
            "SELECT data FROM events WHERE deployment_id = ? AND kind = ? AND run = 'deploy'",
            [deployment_id, str(Kind.PHASE_FINISHED)],
        )
        out = []
        for r in rows:
            data = json.loads(r["data"] or "{}")
            if data.get("status") in statuses:
                out.append(int(data.get("number") or 0))
        return out

    def cache_deployment(self, view: dict[str, Any]) -> None:
        """Remember a deployment another machine made, as its hosts recorded it."""
        if self._writer is not None:
            self._writer.put(lambda db: self._cache(db, view))
            return
        with self.db:
            self._cache(self.db, view)

    def _cache(self, db: sqlite3.Connection, view: dict[str, Any]) -> None:
        _upsert_deployment(
            db,
            {
                "id": view["id"],
                "target": view.get("target", ""),
                "kind": "deploy",
                "revision": view.get("revision", ""),
                "release": view.get("release", ""),
                "previous_release": "{}",
                "operator": json.dumps({"user": view.get("operator", "")}),
                "started_at": view.get("started_at") or time.time(),
                "status": UNFINISHED
                if view.get("status") in ("running", "interrupted", "paused", "rolling_back")
                else "finished",
                "outcome": view.get("status", ""),
                "dry_run": 0,
                "options": "{}",
                "hosts": json.dumps(view.get("hosts", [])),
                "summary": json.dumps({"from_hosts": True, "machine": view.get("machine")}),
                "pid": 0,
            },
        )

    def of_kind(self, deployment_id: str, kind: str, run: str | None = None) -> list[Event]:
        """A deployment's events of one kind (and run), read alone: rollback and resume ask
        one question of the journal, never load every output line of a run."""
        self.flush()
        sql = "SELECT * FROM events WHERE deployment_id = ? AND kind = ?"
        args: list[Any] = [deployment_id, str(kind)]
        if run:
            sql += " AND run = ?"
            args.append(run)
        return [_decode_event(r) for r in self.db.execute(sql + " ORDER BY seq", args)]

    def last_seq(self) -> int:
        self.flush()
        row = self.db.execute("SELECT MAX(seq) AS m FROM events").fetchone()
        return int(row["m"] or 0)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.db.close()


def _upsert_deployment(db: sqlite3.Connection, row: dict[str, Any]) -> None:
    """Insert the deployment, or set these columns where its id is already known."""
    columns = ", ".join(f'"{c}"' for c in row)
    marks = ", ".join("?" for _ in row)
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in row if c != "id")
    db.execute(
        f'INSERT INTO "deployments" ({columns}) VALUES ({marks})'
        f' ON CONFLICT("id") DO UPDATE SET {updates}',
        list(row.values()),
    )


def _update_deployment(db: sqlite3.Connection, deployment_id: str, fields: dict[str, Any]) -> None:
    """Set these columns of a known deployment (an unknown id is an error, as before)."""
    if not fields:
        return
    sets = ", ".join(f'"{c}" = ?' for c in fields)
    cursor = db.execute(
        f'UPDATE "deployments" SET {sets} WHERE "id" = ?', [*fields.values(), deployment_id]
    )
    if cursor.rowcount == 0:
        raise KeyError(f"no deployment {deployment_id!r} in the journal")


def _nudge(db: Any) -> None:
    """A write that writes nothing: a flush queues it to end the batch being gathered."""


class _Writer:
    """The journal's writer thread: one connection of its own, one commit per batch."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self.queued = 0  # writes put so far
        self.done = 0  # writes committed (or given up) so far, in order
        self.idle = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self.thread.start()

    def put(self, write: Any, *args: Any) -> None:
        with self.idle:
            self.queued += 1
        self.queue.put((write, *args))

    def flush(self, timeout: float | None = None) -> None:
        """Wait for the writes queued before this call (not for those that keep coming)."""
        if threading.current_thread() is self.thread:
            return
        with self.idle:
            if self.done >= self.queued:
                return
        self.put(_nudge)  # ends the batch being gathered: commit now, not in 50 ms
        with self.idle:
            target = self.queued
            self.idle.wait_for(lambda: self.done >= target or not self.thread.is_alive(), timeout)

    def close(self) -> None:
        self.flush(10)
        self.queue.put(None)
        self.thread.join(10)

    def _run(self) -> None:
        db = connect(self.journal.path)
        try:
            while True:
                first = self.queue.get()
                if first is None:
                    return
                batch = [first]
                deadline = time.monotonic() + BATCH_SECONDS
                while len(batch) < BATCH_MAX and first[0] is not _nudge:
                    try:
                        item = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
                    except queue.Empty:
                        break
                    if item is None:
                        self.queue.put(None)  # end after this batch
                        break
                    batch.append(item)
                    if item[0] is _nudge:
                        break
                self._commit(db, batch)
        finally:
            db.close()
            with self.idle:
                self.idle.notify_all()

    def _commit(self, db: sqlite3.Connection, batch: list[tuple[Any, ...]]) -> None:
        try:
            with db:
                for write, *args in batch:
                    write(db, *args)
            self.journal.commits += 1
        except Exception:  # the journal is a cache: a failed write is logged, never fatal
            log.exception("journal: %d write(s) lost", len(batch))
        with self.idle:
            self.done += len(batch)
            self.idle.notify_all()


def _decode_deployment(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in ("operator", "options", "hosts", "summary", "previous_release"):
        try:
            out[key] = json.loads(out.get(key) or "null")
        except (TypeError, ValueError):
            pass
    return out


def _decode_event(row: sqlite3.Row) -> Event:
    return Event(
        kind=row["kind"],
        deployment_id=row["deployment_id"],
        run=row["run"] or "deploy",
        phase=row["phase"],
        host=row["host"],
        data=json.loads(row["data"] or "{}"),
        ts=row["ts"],
        seq=row["seq"],
    )


def process_alive(pid: Any) -> bool:
    """Whether ``pid`` runs on this machine (the journal records the deploying process);
    a zombie (exited, not reaped) is gone. psutil: the same answer on Linux, macOS, BSD."""
    import psutil

    try:
        return psutil.Process(int(pid)).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, ValueError, TypeError):
        return False
    except psutil.AccessDenied:  # another user's process: it exists
        return True
    return True
