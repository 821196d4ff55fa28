"""Samples in SQLite, in the journal's database file, for ``show`` and the control room.

One row per window per host (and ``host = "total"``), keyed by deployment id and time
(``end``, epoch seconds). ``phase`` is ``baseline`` (before the switch) or ``monitor``;
``kind`` is ``window`` or ``aggregate`` (the whole baseline, the whole run). Latencies
are milliseconds, rates fractions. The table sits beside the journal's own tables; WAL
lets the control room read while the monitor writes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..sqlite import immediate, open_database
from .window import WindowStats

TABLE = "samples"
_COLUMNS: dict[str, type] = {
    "id": int,
    "deployment_id": str,
    "run_id": str,
    "phase": str,  # baseline | monitor
    "kind": str,  # window | aggregate
    "host": str,  # a host name or "total"
    "window": int,
    "start": float,
    "end": float,
    "requests": int,
    "errors": int,
    "client_errors": int,
    "rps": float,
    "error_rate": float,
    "p50": float,
    "p95": float,
    "p99": float,
    "probes": int,
    "probe_ok": int,
    "uptime": float,
    "probe_failures": int,
    "source": str,
    "verdict": str,
    "data": str,  # JSON: bad_rules, secondary sources, unparsed lines, scrape errors
}
_PLAIN = [
    c for c in _COLUMNS if c not in ("id", "deployment_id", "run_id", "phase", "kind", "data")
]


class SampleStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = open_database(self.path)
        with immediate(self.db):
            if TABLE not in self.db.table_names():
                self.db.table(TABLE).create(_COLUMNS, pk="id", if_not_exists=True)
                self.db.table(TABLE).create_index(["deployment_id", "end"], if_not_exists=True)

    def add(
        self,
        deployment_id: str,
        run_id: str,
        phase: str,
        samples: Iterable[WindowStats],
        kind: str = "window",
    ) -> None:
        rows = []
        for s in samples:
            row: dict[str, Any] = {c: getattr(s, "index" if c == "window" else c) for c in _PLAIN}
            row.update(deployment_id=deployment_id, run_id=run_id, phase=phase, kind=kind)
            row["data"] = json.dumps(
                {
                    "bad_rules": s.bad_rules,
                    "secondary": s.secondary,
                    "unparsed": s.unparsed,
                    "scrape_errors": s.scrape_errors,
                }
            )
            rows.append(row)
        if rows:
            with self.db.conn:
                self.db.table(TABLE).insert_all(rows)

    def rows(
        self,
        deployment_id: str,
        phase: str | None = None,
        kind: str | None = "window",
        host: str | None = None,
    ) -> list[dict[str, Any]]:
        """Samples of a deployment in time order; ``data`` decoded."""
        sql = f"SELECT * FROM {TABLE} WHERE deployment_id = ?"
        args: list[Any] = [deployment_id]
        for column, value in (("phase", phase), ("kind", kind), ("host", host)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        out = []
        for row in self.db.query(sql + " ORDER BY end, id", args):
            row = dict(row)
            row["data"] = json.loads(row.get("data") or "{}")
            out.append(row)
        return out

    def baseline(self, deployment_id: str) -> dict[str, WindowStats]:
        """The latest recorded baseline aggregate of a deployment, by host ("total" too)."""
        rows = self.rows(deployment_id, phase="baseline", kind="aggregate")
        if not rows:
            return {}
        latest = rows[-1]["run_id"]
        return {r["host"]: _stats(r) for r in rows if r["run_id"] == latest}

    def close(self) -> None:
        self.db.conn.close()


def _stats(row: dict[str, Any]) -> WindowStats:
    raw = {c: row[c] for c in _PLAIN if c != "window"}
    raw["index"] = row["window"]
    raw["bad_rules"] = row["data"].get("bad_rules", [])
    raw["secondary"] = row["data"].get("secondary", {})
    return WindowStats.from_dict(raw)
