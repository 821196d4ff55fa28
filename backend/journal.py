"""The journal: every event, as it happens, in SQLite (sqlite-utils, WAL).

It is the record that ``history``, ``show``, ``watch``, ``resume`` and ``rollback`` read, so
that a crash of portal-ops never loses where a deployment stopped. One file in the state
directory; several processes may read it while one writes.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from .events import Event, Kind
from .paths import state_dir
from .sqlite import immediate, open_database

UNFINISHED = "running"


class Journal:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else state_dir() / "journal.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = open_database(self.path)
        with immediate(self.db):
            self._ensure_schema()

    def _ensure_schema(self) -> None:
        if "deployments" not in self.db.table_names():
            self.db["deployments"].create(
                {
                    "id": str,
                    "target": str,
                    "kind": str,  # deploy | rollback-only
                    "revision": str,
                    "release": str,
                    "previous_release": str,
                    "operator": str,
                    "started_at": float,
                    "finished_at": float,
                    "status": str,  # running | finished
                    "outcome": str,  # succeeded | failed | rolled_back | partial | paused
                    "dry_run": int,
                    "options": str,  # JSON: force, skip_validation, ...
                    "hosts": str,  # JSON list of host names
                    "summary": str,  # JSON summary written at the end
                    "pid": int,
                },
                pk="id",
            )
            self.db["deployments"].create_index(["target", "started_at"])
        if "events" not in self.db.table_names():
            self.db["events"].create(
                {
                    "seq": int,
                    "deployment_id": str,
                    "ts": float,
                    "kind": str,
                    "run": str,
                    "phase": str,
                    "host": str,
                    "data": str,
                },
                pk="seq",
            )
            self.db["events"].create_index(["deployment_id", "seq"])

    # -- writing --------------------------------------------------------------------------

    def record(self, event: Event) -> Event:
        """Write one event and keep the deployments table in step with it."""
        with self.db.conn:
            cursor = self.db.execute(
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
            if (
                event.deployment_id
                and event.kind == Kind.DEPLOYMENT_STARTED
                and event.run == "deploy"
            ):
                self._insert_deployment(event)
        return replace(event, seq=seq)

    def _insert_deployment(self, event: Event) -> None:
        d = event.data
        self.db["deployments"].upsert(
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
            pk="id",
        )

    def update_deployment(self, deployment_id: str, **fields: Any) -> None:
        encoded = {
            k: json.dumps(v, default=str) if isinstance(v, dict | list) else v
            for k, v in fields.items()
        }
        with self.db.conn:
            self.db["deployments"].update(deployment_id, encoded)

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
        return [r["id"] for r in self.db.query("SELECT id FROM deployments")]

    def get_deployment(self, deployment_id: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM deployments WHERE id = ?", [deployment_id]))
        return _decode_deployment(rows[0]) if rows else None

    def list_deployments(self, limit: int = 20, target: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM deployments"
        args: list[Any] = []
        if target:
            sql += " WHERE target = ?"
            args.append(target)
        sql += " ORDER BY started_at DESC LIMIT ?"
        args.append(limit)
        return [_decode_deployment(r) for r in self.db.query(sql, args)]

    def latest_deployment(
        self, target: str | None = None, real_only: bool = True
    ) -> dict[str, Any] | None:
        for row in self.list_deployments(limit=50, target=target):
            if real_only and row["dry_run"]:
                continue
            return row
        return None

    def unfinished(self, target: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM deployments WHERE status = ? AND dry_run = 0"
        args: list[Any] = [UNFINISHED]
        if target:
            sql += " AND target = ?"
            args.append(target)
        return [_decode_deployment(r) for r in self.db.query(sql + " ORDER BY started_at", args)]

    def abandoned(self, target: str | None = None) -> list[dict[str, Any]]:
        """Unfinished deployments whose process is gone (killed, SSH to the bastion lost)."""
        return [d for d in self.unfinished(target) if not process_alive(d.get("pid"))]

    def events(
        self, deployment_id: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        sql = "SELECT * FROM events WHERE seq > ?"
        args: list[Any] = [after_seq]
        if deployment_id:
            sql += " AND deployment_id = ?"
            args.append(deployment_id)
        sql += " ORDER BY seq"
        if limit:
            sql += " LIMIT ?"
            args.append(limit)
        return [_decode_event(r) for r in self.db.query(sql, args)]

    def last_checkpoint(self, deployment_id: str) -> dict[str, Any]:
        """The deployment's last checkpoint, read alone (not every event of the run)."""
        rows = list(
            self.db.query(
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
        rows = self.db.query(
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
        with self.db.conn:
            self.db["deployments"].upsert(
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
                pk="id",
            )

    def last_seq(self) -> int:
        row = next(self.db.query("SELECT MAX(seq) AS m FROM events"))
        return int(row["m"] or 0)

    def close(self) -> None:
        self.db.conn.close()


def _decode_deployment(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("operator", "options", "hosts", "summary", "previous_release"):
        try:
            out[key] = json.loads(out.get(key) or "null")
        except (TypeError, ValueError):
            pass
    return out


def _decode_event(row: dict[str, Any]) -> Event:
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
