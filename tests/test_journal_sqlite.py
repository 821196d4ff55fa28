"""The journal on plain sqlite3 reads and writes the same file sqlite-utils made: a
journal from before keeps its deployments and events, and new ones land beside them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from backend.events import Event, Kind
from backend.journal import Journal


def old_journal(path: Path) -> None:
    """The journal as sqlite-utils created it, with one finished deployment in it."""
    db = sqlite_utils.Database(sqlite3.connect(str(path)))
    db.table("deployments").create(
        {"id": str, "target": str, "kind": str, "revision": str, "release": str}
        | {"previous_release": str, "operator": str, "started_at": float}
        | {"finished_at": float, "status": str, "outcome": str, "dry_run": int}
        | {"options": str, "hosts": str, "summary": str, "pid": int},
        pk="id",
    )
    db.table("deployments").create_index(["target", "started_at"])
    db.table("events").create(
        {"seq": int, "deployment_id": str, "ts": float, "kind": str}
        | {"run": str, "phase": str, "host": str, "data": str},
        pk="seq",
    )
    db.table("events").create_index(["deployment_id", "seq"])
    db["deployments"].insert(
        {"id": "old", "target": "portal", "kind": "deploy", "revision": "v1", "release": "r1"}
        | {"previous_release": "{}", "operator": '{"user": "ann"}', "started_at": 1.0}
        | {"finished_at": 2.0, "status": "finished", "outcome": "succeeded", "dry_run": 0}
        | {"options": "{}", "hosts": '["web-1"]', "summary": '{"ok": true}', "pid": 1}
    )
    db["events"].insert(
        {"deployment_id": "old", "ts": 1.0, "kind": "deployment.finished", "run": "deploy"}
        | {"phase": None, "host": None, "data": '{"outcome": "succeeded"}'}
    )
    db.conn.commit()
    db.conn.close()


def test_a_journal_sqlite_utils_wrote_reads_and_grows(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    old_journal(path)
    journal = Journal(path)
    old = journal.get_deployment("old")
    assert old is not None
    assert (old["outcome"], old["hosts"], old["operator"]) == (
        "succeeded",
        ["web-1"],
        {"user": "ann"},
    )
    started = Event(
        Kind.DEPLOYMENT_STARTED,
        deployment_id="new",
        data={"target": "portal", "revision": "v2", "release": "r2", "hosts": ["web-1"]},
    )
    assert journal.record(started).seq == 2
    journal.finish_deployment("new", "succeeded", {"hosts": 1})
    assert [d["id"] for d in journal.list_deployments()] == ["new", "old"]
    assert journal.get_deployment("new")["summary"] == {"hosts": 1}  # type: ignore[index]
    assert [e.seq for e in journal.events()] == [1, 2]
    journal.close()


def test_a_deployment_cached_from_hosts_then_started_here_keeps_one_row(tmp_path: Path) -> None:
    """The upsert sets the columns it names and keeps the row's identity."""
    journal = Journal(tmp_path / "journal.db")
    journal.cache_deployment({"id": "d1", "target": "portal", "status": "running"})
    journal.record(Event(Kind.DEPLOYMENT_STARTED, deployment_id="d1", data={"target": "portal"}))
    rows = journal.list_deployments()
    assert [(r["id"], r["status"], r["kind"]) for r in rows] == [("d1", "running", "deploy")]
    journal.close()


def test_updating_an_unknown_deployment_is_an_error(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    with pytest.raises(KeyError, match="nope"):
        journal.update_deployment("nope", status="finished")
    journal.close()
