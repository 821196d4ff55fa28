"""The store and the service without Redis: audit, kill switch, bad input, events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.events import EventBus, Kind
from backend.flags.model import Context, FlagError, UnknownFlagError
from backend.flags.service import FlagService
from backend.identity import Operator
from backend.journal import Journal

ALICE = Operator("alice", "bastion", "ssh from 10.0.0.5")


@pytest.fixture
def service(state_dir: Path) -> Iterator[FlagService]:
    svc = FlagService(state_dir / "journal.db", None, operator=ALICE)
    yield svc
    svc.close()


def test_lifecycle_is_audited_with_operator_and_reason(service: FlagService) -> None:
    service.create("ui-improvements", "New UI", reason="sprint 12")
    service.enable("ui-improvements", 50, reason="half of the companies")
    service.override("ui-improvements", "company", "AB12A", True, reason="pilot customer")
    service.disable("ui-improvements", reason="bug")
    entries = service.history("ui-improvements")
    assert [e.action for e in entries] == [
        "disable",
        "override-company-on",
        "enable",
        "create",
    ]
    enable = entries[2]
    assert enable.operator == "alice@bastion (ssh from 10.0.0.5)"
    assert enable.operator_detail["via"] == "ssh from 10.0.0.5"
    assert enable.reason == "half of the companies"
    assert enable.to_json()["changes"] == {"enabled": [False, True], "percentage": [100, 50]}
    assert entries[1].to_json()["changes"] == {"overrides.company.AB12A": [None, True]}


def test_disable_then_enable_keeps_the_rollout(service: FlagService) -> None:
    service.create("f")
    service.enable("f", 30)
    service.override("f", "user", "42", True)
    service.disable("f")
    flag = service.get("f")
    assert (flag.enabled, flag.percentage, dict(flag.user_overrides)) == (False, 30, {"42": True})
    service.enable("f")
    assert (service.get("f").enabled, service.get("f").percentage) == (True, 30)


def test_emergency_disable_keeps_configuration_and_restore_brings_it_back(
    service: FlagService,
) -> None:
    service.create("a")
    service.enable("a", 100)
    service.create("b")
    service.enable("b", 40)
    service.override("b", "company", "acme", True)
    before = {f.name: f.to_json() for f in service.flags()}

    change = service.emergency_disable("Critical issue", deployment_id="bp-1")
    assert change.changed
    for name in ("a", "b"):
        res = service.check(name, Context(company="acme")).resolution
        assert (res.value, res.reason, res.rule) == (False, "DISABLED", "emergency-disable")
    assert {f.name: f.to_json() for f in service.flags()} == before  # nothing lost
    assert [r.state for r in service.list_flags()] == ["emergency-off", "emergency-off"]
    assert not service.emergency_disable("again").changed  # idempotent, no second entry

    assert [f.name for f in service.restore_preview()] == ["a", "b"]
    assert service.restore(reason="fixed").changed
    assert service.check("b", Context(company="acme")).resolution.value is True
    assert service.check("a", Context(company="x")).resolution.value is True
    actions = [(e.flag, e.action, e.deployment_id) for e in service.history(limit=2)]
    assert actions == [("*", "restore", None), ("*", "emergency-disable", "bp-1")]


def test_emergency_disable_needs_a_reason(service: FlagService) -> None:
    with pytest.raises(FlagError):
        service.emergency_disable("  ")
    assert not service.emergency().active


def test_bad_input_changes_nothing(service: FlagService) -> None:
    service.create("f")
    revision = service.store.revision()
    with pytest.raises(FlagError):
        service.enable("f", 101)
    with pytest.raises(FlagError):
        service.enable("f", "50%")  # type: ignore[arg-type]
    with pytest.raises(FlagError):
        service.create("Bad Name")
    with pytest.raises(UnknownFlagError):
        service.enable("missing", 10)
    with pytest.raises(FlagError):
        service.override("f", "team", "x", True)
    with pytest.raises(FlagError):
        service.override("f", "company", "  ", True)
    with pytest.raises(FlagError):
        service.create("f")  # exists
    with pytest.raises(FlagError):
        service.prepare_release_flags(["ok-one", "NOT ok"], "bp-2")
    assert service.store.revision() == revision
    assert [f.name for f in service.flags()] == ["f"]


def test_prepare_release_flags_is_idempotent(service: FlagService) -> None:
    service.create("existing")
    service.enable("existing", 100)
    first = service.prepare_release_flags(["new-a", "existing", "new-b"], "bp-3")
    assert [(c.flag, c.changed) for c in first] == [
        ("new-a", True),
        ("existing", False),
        ("new-b", True),
    ]
    again = service.prepare_release_flags(["new-a", "existing", "new-b"], "bp-3")
    assert not any(c.changed for c in again)
    assert service.get("existing").enabled  # untouched
    assert not service.get("new-a").enabled
    assert service.history("new-a")[0].deployment_id == "bp-3"


def test_changes_are_events_on_the_bus_and_in_the_journal(state_dir: Path) -> None:
    journal = Journal(state_dir / "journal.db")
    bus = EventBus()
    bus.set_stamper(journal.record)
    seen = []
    bus.subscribe(seen.append)
    with FlagService(journal, None, bus=bus, operator=ALICE) as service:
        service.create("f", deployment_id="bp-9")
        service.enable("f", 10, reason="canary", deployment_id="bp-9")
        service.enable("f", 10)  # unchanged: no event
    assert [e.data["change"] for e in seen] == ["create", "enable"]
    event = seen[1]
    assert event.kind == Kind.FLAG_CHANGED
    assert event.deployment_id == "bp-9"
    assert event.data["changes"] == {"enabled": [False, True], "percentage": [100, 10]}
    assert event.data["operator"]["user"] == "alice"
    assert event.data["reason"] == "canary"
    recorded = journal.events("bp-9")
    assert [e.kind for e in recorded] == [Kind.FLAG_CHANGED, Kind.FLAG_CHANGED]
    journal.close()


def test_list_flags_for_the_control_room(service: FlagService) -> None:
    service.create("a", "first")
    service.enable("a", 25, reason="start")
    service.override("a", "company", "c1", True)
    service.override("a", "user", "u1", False)
    (row,) = service.list_flags()
    assert (row.name, row.state, row.percentage, row.overrides) == ("a", "on", 25, 2)
    assert row.evaluations_last_hour is None  # no Redis: unknown, not zero
    assert row.last_change_action == "override-user-off"
    assert row.last_change_by.startswith("alice@bastion")


def test_history_of_unknown_flag_is_an_error_but_deleted_flags_keep_theirs(
    service: FlagService,
) -> None:
    with pytest.raises(UnknownFlagError):
        service.history("never-existed")
    service.create("gone")
    service.delete("gone", reason="cleanup")
    assert [e.action for e in service.history("gone")] == ["delete", "create"]
    with pytest.raises(UnknownFlagError):
        service.get("gone")


def test_store_shares_the_journal_file(state_dir: Path) -> None:
    with FlagService(None, None) as service:  # default: state_dir()/journal.db
        service.create("f")
    db = Journal(state_dir / "journal.db").db
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert {"flags", "flag_overrides", "flag_audit", "flag_state", "events"} <= set(tables)
