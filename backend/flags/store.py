"""The flag store: SQLite (sqlite-utils, WAL), the source of truth, with the audit log.

It lives in the journal's database file (``state_dir()/journal.db``) so one file holds
what happened to deployments and to flags. Each store opens its own connection, so the
engine's journal writer and a flag change never share a transaction. Every write runs in
``BEGIN IMMEDIATE`` (so two operators cannot interleave a read-modify-write) and adds one
row to ``flag_audit``, whose sequence number doubles as the store's revision.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..identity import Operator
from ..sqlite import open_database
from .model import UNSET, Emergency, Flag, UnknownFlagError

GLOBAL = "*"  # the audit log's "flag" for changes to every flag (emergency, restore)


@dataclass(frozen=True)
class AuditEntry:
    """One change: who, when, what it was before and after, and why."""

    seq: int
    ts: float
    flag: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str
    operator: str
    operator_detail: dict[str, Any]
    deployment_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ts": self.ts,
            "flag": self.flag,
            "action": self.action,
            "before": self.before,
            "after": self.after,
            "changes": diff(self.before, self.after),
            "reason": self.reason,
            "operator": self.operator,
            "operator_detail": self.operator_detail,
            "deployment_id": self.deployment_id,
        }


_NOISE = {"version", "updated_at"}


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, list[Any]]:
    """Changed fields as ``{field: [from, to]}``; overrides per id (``overrides.company.X``)."""
    a, b = _flatten(before or {}), _flatten(after or {})
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in _NOISE and not prefix:
            continue
        if key == "strategies" and not prefix and isinstance(value, list):
            out.update(_strategies(value))
            continue
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _strategies(strategies: list[Any]) -> dict[str, Any]:
    """Strategies as ``strategies.N`` -> one line each; nothing for a simple flag (one
    unconstrained rollout), whose percentage, stickiness and group already say it all."""
    if (
        len(strategies) == 1
        and isinstance(strategies[0], dict)
        and strategies[0].get("name") == "flexibleRollout"
        and not strategies[0].get("constraints")
        and not strategies[0].get("segments")
    ):
        return {}
    if not strategies:
        return {"strategies": "none (on for everyone)"}
    return {
        f"strategies.{i + 1}": json.dumps(s, sort_keys=True, separators=(",", ":"))
        for i, s in enumerate(strategies)
    }


class FlagStore:
    """Flags, overrides, the emergency state and the audit log in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = open_database(self.path, autocommit=True)
        self._lock = threading.RLock()  # one connection, used from the loop and worker threads
        # under the write lock: a schema check that reads, then writes, in autocommit can
        # fail at once ("database is locked") when the journal commits in between
        with self._tx() as conn:
            self._ensure_schema()
            row = conn.execute("SELECT value FROM flag_state WHERE key = 'store_id'").fetchone()
            if row is None:
                # this store's name in Redis, where several machines publish (layout.py)
                row = (uuid.uuid4().hex,)
                conn.execute("INSERT INTO flag_state (key, value) VALUES ('store_id', ?)", row)
        self.store_id: str = row[0]

    def _ensure_schema(self) -> None:
        db = self.db
        db.table("flags").create(
            {
                "name": str,
                "description": str,
                "enabled": int,
                "percentage": int,
                "stickiness": str,
                "grp": str,
                "version": int,
                "created_at": float,
                "created_by": str,
                "updated_at": float,
                "updated_by": str,
                "deployment_id": str,  # the release that introduced it, if any
                "strategies": str,  # JSON list (Strategy.to_json); NULL: the columns above
            },
            pk="name",
            if_not_exists=True,
        )
        if "strategies" not in db["flags"].columns_dict:
            # a store written before strategies: its flags are simple rollouts, which the
            # percentage/stickiness/grp columns describe; NULL keeps that meaning
            db.conn.execute("ALTER TABLE flags ADD COLUMN strategies TEXT")
        db.table("flag_overrides").create(
            {"flag": str, "kind": str, "id": str, "value": int, "set_at": float, "set_by": str},
            pk=("flag", "kind", "id"),
            if_not_exists=True,
        )
        db.table("flag_audit").create(
            {
                "seq": int,
                "ts": float,
                "flag": str,
                "action": str,
                "before": str,
                "after": str,
                "reason": str,
                "operator": str,
                "operator_detail": str,
                "deployment_id": str,
            },
            pk="seq",
            if_not_exists=True,
        )
        db.table("flag_state").create({"key": str, "value": str}, pk="key", if_not_exists=True)
        db.table("flag_audit").create_index(["flag", "seq"], if_not_exists=True)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the database's write lock up front."""
        with self._lock:
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- reading --------------------------------------------------------------------------

    def get(self, name: str) -> Flag | None:
        with self._lock:
            rows = list(self.db.query("SELECT * FROM flags WHERE name = ?", [name]))
            if not rows:
                return None
            overrides = list(self.db.query("SELECT * FROM flag_overrides WHERE flag = ?", [name]))
        return _flag(rows[0], overrides)

    def require(self, name: str) -> Flag:
        flag = self.get(name)
        if flag is None:
            raise UnknownFlagError(name)
        return flag

    def all(self) -> list[Flag]:
        with self._lock:
            rows = list(self.db.query("SELECT * FROM flags ORDER BY name"))
            overrides = list(self.db.query("SELECT * FROM flag_overrides"))
        by_flag: dict[str, list[dict[str, Any]]] = {}
        for o in overrides:
            by_flag.setdefault(o["flag"], []).append(o)
        return [_flag(r, by_flag.get(r["name"], [])) for r in rows]

    def emergency(self) -> Emergency:
        with self._lock:
            rows = list(self.db.query("SELECT value FROM flag_state WHERE key = 'emergency'"))
        return Emergency.from_json(json.loads(rows[0]["value"])) if rows else Emergency()

    def revision(self) -> int:
        """The sequence number of the last change (0: never changed)."""
        with self._lock:
            row = next(self.db.query("SELECT MAX(seq) AS m FROM flag_audit"))
        return int(row["m"] or 0)

    def snapshot(self) -> tuple[int, list[Flag], Emergency]:
        """Revision, flags and emergency state read in one transaction (consistent)."""
        with self._lock:
            self.db.conn.execute("BEGIN")
            try:
                return self.revision(), self.all(), self.emergency()
            finally:
                self.db.conn.execute("COMMIT")

    def history(self, name: str | None = None, limit: int = 50) -> list[AuditEntry]:
        """Newest first. A flag's history includes the global emergency/restore entries."""
        sql = "SELECT * FROM flag_audit"
        args: list[Any] = []
        if name:
            sql += " WHERE flag = ? OR flag = ?"
            args += [name, GLOBAL]
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            return [_entry(r) for r in self.db.query(sql, args)]

    def last_changes(self) -> dict[str, AuditEntry]:
        """The latest audit entry of every flag, for the list and the control room."""
        sql = (
            "SELECT a.* FROM flag_audit a JOIN (SELECT flag, MAX(seq) AS m FROM flag_audit"
            " GROUP BY flag) l ON a.seq = l.m"
        )
        with self._lock:
            return {r["flag"]: _entry(r) for r in self.db.query(sql)}

    # -- writing --------------------------------------------------------------------------

    def create(
        self,
        flag: Flag,
        operator: Operator,
        reason: str = "",
        deployment_id: str | None = None,
    ) -> tuple[Flag, AuditEntry | None]:
        """Insert ``flag``; if the name exists, return the stored one and no entry."""
        now = time.time()
        with self._tx() as conn:
            existing = self._get_in(conn, flag.name)
            if existing is not None:
                return existing, None
            stored = replace(flag, version=1, updated_at=now)
            conn.execute(
                "INSERT INTO flags (name, description, enabled, percentage, stickiness, grp,"
                " version, created_at, created_by, updated_at, updated_by, deployment_id,"
                " strategies) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    stored.name,
                    stored.description,
                    int(stored.enabled),
                    stored.percentage,
                    stored.stickiness,
                    stored.group,
                    stored.version,
                    now,
                    str(operator),
                    now,
                    str(operator),
                    deployment_id,
                    _strategies_json(stored),
                ],
            )
            entry = self._audit(
                conn, now, stored.name, "create", None, stored, reason, operator, deployment_id
            )
        return stored, entry

    def update(
        self,
        name: str,
        action: str,
        operator: Operator,
        reason: str = "",
        deployment_id: str | None = None,
        **fields: Any,
    ) -> tuple[Flag, Flag, AuditEntry | None]:
        """Change ``enabled``/``percentage``/``description``/``strategies`` (and, with
        ``overrides_cleared``, drop every override); no entry if nothing changed."""
        now = time.time()
        clear = bool(fields.pop("overrides_cleared", False))
        if "strategies" in fields:
            fields.setdefault("percentage", UNSET)  # the new strategies' own rollout
        with self._tx() as conn:
            before = self._require_in(conn, name)
            if clear:
                fields.update(company_overrides={}, user_overrides={})
            after = replace(before, **fields)
            if after == before:
                return before, before, None
            after = replace(after, version=before.version + 1, updated_at=now)
            if clear:
                conn.execute("DELETE FROM flag_overrides WHERE flag = ?", [name])
            conn.execute(
                "UPDATE flags SET description = ?, enabled = ?, percentage = ?, stickiness = ?,"
                " grp = ?, strategies = ?, version = ?, updated_at = ?, updated_by = ?"
                " WHERE name = ?",
                [
                    after.description,
                    int(after.enabled),
                    after.percentage,
                    after.stickiness,
                    after.group,
                    _strategies_json(after),
                    after.version,
                    now,
                    str(operator),
                    name,
                ],
            )
            entry = self._audit(
                conn, now, name, action, before, after, reason, operator, deployment_id
            )
        return before, after, entry

    def set_override(
        self,
        name: str,
        kind: str,
        ident: str,
        value: bool | None,
        operator: Operator,
        reason: str = "",
        deployment_id: str | None = None,
    ) -> tuple[Flag, Flag, AuditEntry | None]:
        """Set (True/False) or clear (None) one company or user override."""
        now = time.time()
        with self._tx() as conn:
            before = self._require_in(conn, name)
            current = before.company_overrides if kind == "company" else before.user_overrides
            updated = dict(current)
            if value is None:
                updated.pop(ident, None)
            else:
                updated[ident] = value
            if updated == dict(current):
                return before, before, None
            version = before.version + 1
            if kind == "company":
                after = replace(before, version=version, updated_at=now, company_overrides=updated)
            else:
                after = replace(before, version=version, updated_at=now, user_overrides=updated)
            if value is None:
                conn.execute(
                    "DELETE FROM flag_overrides WHERE flag = ? AND kind = ? AND id = ?",
                    [name, kind, ident],
                )
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO flag_overrides (flag, kind, id, value, set_at, set_by)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [name, kind, ident, int(value), now, str(operator)],
                )
            conn.execute(
                "UPDATE flags SET version = ?, updated_at = ?, updated_by = ? WHERE name = ?",
                [after.version, now, str(operator), name],
            )
            action = f"override-{kind}-" + ("clear" if value is None else "on" if value else "off")
            entry = self._audit(
                conn, now, name, action, before, after, reason, operator, deployment_id
            )
        return before, after, entry

    def delete(
        self, name: str, operator: Operator, reason: str = "", deployment_id: str | None = None
    ) -> tuple[Flag, AuditEntry]:
        now = time.time()
        with self._tx() as conn:
            before = self._require_in(conn, name)
            conn.execute("DELETE FROM flag_overrides WHERE flag = ?", [name])
            conn.execute("DELETE FROM flags WHERE name = ?", [name])
            entry = self._audit(
                conn, now, name, "delete", before, None, reason, operator, deployment_id
            )
        return before, entry

    def set_emergency(
        self,
        state: Emergency,
        operator: Operator,
        reason: str = "",
        deployment_id: str | None = None,
    ) -> tuple[Emergency, Emergency, AuditEntry | None]:
        """Switch the kill switch. Flags' own configuration is never touched."""
        now = time.time()
        with self._tx() as conn:
            rows = conn.execute("SELECT value FROM flag_state WHERE key = 'emergency'").fetchall()
            before = Emergency.from_json(json.loads(rows[0][0])) if rows else Emergency()
            if before.active == state.active:
                return before, before, None
            conn.execute(
                "INSERT OR REPLACE INTO flag_state (key, value) VALUES ('emergency', ?)",
                [json.dumps(state.to_json())],
            )
            action = "emergency-disable" if state.active else "restore"
            entry = self._audit_raw(
                conn,
                now,
                GLOBAL,
                action,
                before.to_json(),
                state.to_json(),
                reason,
                operator,
                deployment_id,
            )
        return before, state, entry

    def record_global(
        self,
        action: str,
        before: Emergency,
        after: Emergency,
        operator: Operator,
        reason: str = "",
        deployment_id: str | None = None,
    ) -> AuditEntry:
        """Audit a kill-switch action this store's own state did not need (another
        machine had switched it), so it is recorded and published like any other."""
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO flag_state (key, value) VALUES ('emergency', ?)",
                [json.dumps(after.to_json())],
            )
            return self._audit_raw(
                conn,
                time.time(),
                GLOBAL,
                action,
                before.to_json(),
                after.to_json(),
                reason,
                operator,
                deployment_id,
            )

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    # -- internals ------------------------------------------------------------------------

    def _get_in(self, conn: sqlite3.Connection, name: str) -> Flag | None:
        conn.row_factory = sqlite3.Row
        try:
            row = conn.execute("SELECT * FROM flags WHERE name = ?", [name]).fetchone()
            if row is None:
                return None
            overrides = conn.execute(
                "SELECT * FROM flag_overrides WHERE flag = ?", [name]
            ).fetchall()
            return _flag(dict(row), [dict(o) for o in overrides])
        finally:
            conn.row_factory = None

    def _require_in(self, conn: sqlite3.Connection, name: str) -> Flag:
        """The stored flag, read inside ``conn``'s transaction; UnknownFlagError if none."""
        flag = self._get_in(conn, name)
        if flag is None:
            raise UnknownFlagError(name)
        return flag

    def _audit(
        self,
        conn: sqlite3.Connection,
        now: float,
        name: str,
        action: str,
        before: Flag | None,
        after: Flag | None,
        reason: str,
        operator: Operator,
        deployment_id: str | None,
    ) -> AuditEntry:
        return self._audit_raw(
            conn,
            now,
            name,
            action,
            before.to_json() if before else None,
            after.to_json() if after else None,
            reason,
            operator,
            deployment_id,
        )

    def _audit_raw(
        self,
        conn: sqlite3.Connection,
        now: float,
        name: str,
        action: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        reason: str,
        operator: Operator,
        deployment_id: str | None,
    ) -> AuditEntry:
        cur = conn.execute(
            "INSERT INTO flag_audit (ts, flag, action, before, after, reason, operator,"
            " operator_detail, deployment_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                now,
                name,
                action,
                json.dumps(before) if before is not None else None,
                json.dumps(after) if after is not None else None,
                reason,
                str(operator),
                json.dumps(operator.to_dict()),
                deployment_id,
            ],
        )
        return AuditEntry(
            seq=int(cur.lastrowid or 0),
            ts=now,
            flag=name,
            action=action,
            before=before,
            after=after,
            reason=reason,
            operator=str(operator),
            operator_detail=operator.to_dict(),
            deployment_id=deployment_id,
        )


def _strategies_json(flag: Flag) -> str:
    return json.dumps([s.to_json() for s in flag.strategies or ()], separators=(",", ":"))


def _flag(row: dict[str, Any], overrides: list[dict[str, Any]]) -> Flag:
    company = {o["id"]: bool(o["value"]) for o in overrides if o["kind"] == "company"}
    user = {o["id"]: bool(o["value"]) for o in overrides if o["kind"] == "user"}
    raw = row.get("strategies")
    if raw:
        from .strategies import Strategy

        name = row["name"]
        return Flag(
            name=name,
            description=row["description"] or "",
            enabled=bool(row["enabled"]),
            company_overrides=company,
            user_overrides=user,
            version=int(row["version"] or 0),
            updated_at=float(row["updated_at"] or 0.0),
            strategies=tuple(
                Strategy.from_json(s, f"stored flag {name!r}") for s in json.loads(raw)
            ),
        )
    return Flag(
        name=row["name"],
        description=row["description"] or "",
        enabled=bool(row["enabled"]),
        percentage=int(row["percentage"]),
        stickiness=row["stickiness"] or "company",
        group=row["grp"] or "",
        company_overrides=company,
        user_overrides=user,
        version=int(row["version"] or 0),
        updated_at=float(row["updated_at"] or 0.0),
    )


def _entry(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        seq=int(row["seq"]),
        ts=float(row["ts"]),
        flag=row["flag"],
        action=row["action"],
        before=json.loads(row["before"]) if row["before"] else None,
        after=json.loads(row["after"]) if row["after"] else None,
        reason=row["reason"] or "",
        operator=row["operator"] or "",
        operator_detail=json.loads(row["operator_detail"] or "{}"),
        deployment_id=row["deployment_id"],
    )
