"""Moving to and from Unleash: `feature export --unleash` / `feature import --unleash`.

The proof is exposure: for 10,000 contexts, every flag answers the same before the export,
after importing it back, and when the exported document is evaluated as Unleash evaluates
it (the context as an Unleash SDK sends it: userId, sessionId, properties.companyId...).
Unleash's semantics themselves are pinned by test_flags_unleash_vectors.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backend.flags.constraints import Constraint
from backend.flags.evaluate import evaluate
from backend.flags.model import Context, Flag
from backend.flags.service import FlagService
from backend.flags.strategies import Segment, Strategy
from backend.flags.unleash import context_from_unleash, read_document
from backend.identity import Operator
from tests.test_flags_cli import feature, ok

ALICE = Operator("alice", "bastion", "")
N = 10_000


def rollout(pct: int, stickiness: str, group: str = "", *c: Constraint) -> Strategy:
    params = {"rollout": str(pct), "stickiness": stickiness, "groupId": group}
    return Strategy("flexibleRollout", params, tuple(c))


EU = Segment(7, "eu", (Constraint("country", "IN", ("fr", "de")),))


def populate(service: FlagService) -> None:
    """Flags of every kind: simple rollouts, overrides, constraints, segments, several
    strategies, Unleash names and groups, off, and on with no strategy."""
    service.create("ui-improvements")
    service.enable("ui-improvements", 50)
    service.override("ui-improvements", "company", "company-3", True)
    service.override("ui-improvements", "company", "company-4", False)
    service.override("ui-improvements", "user", "user-4", True)  # beats its company's off
    service.override("ui-improvements", "user", "user-8", False)
    service.create("new-billing", stickiness="user", group="Billing2026")
    service.enable("new-billing", 30)
    service.create("Feature.NewCheckout")
    service.set_strategies(
        "Feature.NewCheckout",
        [
            Strategy("default", {}, (Constraint("plan", "STR_STARTS_WITH", ("ent",), True),)),
            rollout(25, "default", "AB12A", Constraint("version", "SEMVER_GT", value="2.0.0")),
            Strategy("userWithId", {"userIds": "user-1, user-2"}),
            rollout(60, "tenant", "", Constraint("seats", "NUM_GTE", value="10")),
        ],
    )
    service.enable("Feature.NewCheckout")
    service.override("Feature.NewCheckout", "company", "company-7", False)
    service.create("Feature.UTF-8.Hellø_Wørld")
    service.set_strategies(
        "Feature.UTF-8.Hellø_Wørld",
        [Strategy("default", {}, (Constraint("country", "NOT_IN", ("us",)),), (EU,))],
    )
    service.enable("Feature.UTF-8.Hellø_Wørld")
    service.create("everyone")
    service.set_strategies("everyone", [])
    service.enable("everyone")
    service.override("everyone", "company", "company-5", False)
    service.create("switched-off")
    service.override("switched-off", "company", "company-3", True)


def contexts() -> list[tuple[Context, dict[str, Any]]]:
    """The same 10,000 callers as portal-ops and as an Unleash SDK sees them."""
    out = []
    countries = ["fr", "de", "us", "es"]
    plans = ["enterprise", "Ent-2", "pro", "free"]
    for i in range(N):
        props = {
            "country": countries[i % 4],
            "plan": plans[(i // 4) % 4],
            "version": f"{i % 3 + 1}.{i % 5}.0",
            "seats": str(i % 23),
            "tenant": f"t-{i % 997}",
        }
        company, user, session = f"company-{i % 1000}", f"user-{i}", f"s-{i}"
        ours = Context(company, user, session, props)
        theirs = {
            "userId": user,
            "sessionId": session,
            "properties": {**props, "companyId": company},
        }
        out.append((ours, theirs))
    return out


def exposure(flags: dict[str, Flag], ctxs: list[Context]) -> dict[str, str]:
    return {
        name: "".join("1" if evaluate(flag, c).value else "0" for c in ctxs)
        for name, flag in flags.items()
    }


def test_export_import_round_trip_keeps_every_exposure(tmp_path: Path, state_dir: Path) -> None:
    with FlagService(state_dir / "journal.db", None, operator=ALICE) as service:
        populate(service)
        before = {f.name: f for f in service.flags()}
    callers = contexts()
    ours = [c for c, _ in callers]
    expected = exposure(before, ours)
    assert all("1" in v for k, v in expected.items() if k != "switched-off")  # not vacuous
    assert all("0" in v for v in expected.values())

    exported = tmp_path / "unleash-export.json"
    ok(feature(state_dir, "export", "--unleash", "-o", str(exported)))
    doc = json.loads(exported.read_text(encoding="utf-8"))
    assert {f["name"] for f in doc["features"]} == set(before)
    assert set(doc) >= {"features", "featureStrategies", "featureEnvironments", "segments"}
    fields = {f["name"]: f["stickiness"] for f in doc["contextFields"]}
    assert fields["companyId"] is True and fields["tenant"] is True and fields["plan"] is False

    # as Unleash serves the exported document, to contexts as its SDKs send them
    as_unleash = {f.name: f for f in read_document(doc).flags}
    theirs = [context_from_unleash(u) for _, u in callers]
    assert exposure(as_unleash, theirs) == expected

    # and back into a fresh portal-ops store
    other = tmp_path / "other-state"
    other.mkdir()
    out = ok(feature(other, "import", "--unleash", str(exported)))
    assert "imported 6 flag(s)" in out
    with FlagService(other / "journal.db", None, operator=ALICE) as service:
        after = {f.name: f for f in service.flags()}
    assert exposure(after, ours) == expected
    assert exposure(after, theirs) == expected


def test_import_of_an_unleash_export_with_segments_by_name(tmp_path: Path, state_dir: Path) -> None:
    """Unleash's export names segments only; their constraints come from --segments."""
    doc = {
        "features": [{"name": "Feature.Seg", "description": "d", "type": "release"}],
        "featureStrategies": [
            {
                "id": "a1",
                "featureName": "Feature.Seg",
                "name": "flexibleRollout",
                "parameters": {"rollout": "100", "stickiness": "default", "groupId": "G"},
                "constraints": [],
                "segments": [3],
                "sortOrder": 0,
            }
        ],
        "featureEnvironments": [
            {"featureName": "Feature.Seg", "environment": "production", "enabled": True},
            {"featureName": "Feature.Seg", "environment": "development", "enabled": False},
        ],
        "segments": [{"id": 3, "name": "beta"}],
        "tagTypes": [],
    }
    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    proc = feature(state_dir, "import", "--unleash", str(path))
    assert proc.returncode == 2 and "several environments" in proc.stderr
    proc = feature(state_dir, "import", "--unleash", str(path), "--environment", "production")
    assert proc.returncode == 2 and "segment 3 is listed without its constraints" in proc.stderr
    segments = tmp_path / "segments.json"
    beta = {"id": 41, "name": "beta", "constraints": [
        {"contextName": "plan", "operator": "IN", "values": ["beta"]}]}  # fmt: skip
    segments.write_text(json.dumps({"segments": [beta]}), encoding="utf-8")
    ok(feature(state_dir, "import", "--unleash", str(path), "--environment", "production",
               "--segments", str(segments)))  # fmt: skip
    checked = feature(state_dir, "check", "Feature.Seg", "--user", "1", "--property", "plan=x")
    text = " ".join(ok(checked).split())  # the explanation is wrapped to the terminal
    assert ": OFF" in text and "constraint plan IN [beta] failed (plan 'x')" in text
    on = ok(feature(state_dir, "check", "Feature.Seg", "--user", "1", "--property", "plan=beta"))
    assert ": ON" in on and "enabled at 100%" in on
    shown = ok(feature(state_dir, "show", "Feature.Seg"))
    assert "and segment 41 beta" in shown and "plan IN [beta]" in shown


@pytest.mark.parametrize(
    ("feature_doc", "message"),
    [
        ({"name": "a", "enabled": True, "strategies": [{"name": "myCustom"}]}, "custom strategy"),
        (
            {"name": "a", "enabled": True, "dependencies": [{"feature": "b"}], "strategies": []},
            "depends on other flags",
        ),
        (
            {"name": "a", "enabled": True, "strategies": [{"name": "default", "constraints": [
                {"contextName": "email", "operator": "REGEX", "value": ".*"}]}]},
            "unsupported operator 'REGEX'",
        ),
        ({"name": "a b", "enabled": True, "strategies": []}, "bad flag name"),
    ],
)  # fmt: skip
def test_what_cannot_be_served_identically_is_refused(
    tmp_path: Path, state_dir: Path, feature_doc: dict[str, Any], message: str
) -> None:
    ok(feature(state_dir, "create", "kept"))
    before = ok(feature(state_dir, "history", "--json"))
    good = {"name": "fine", "enabled": True, "strategies": []}
    path = tmp_path / "client.json"
    path.write_text(json.dumps({"version": 2, "features": [good, feature_doc]}))
    proc = feature(state_dir, "import", "--unleash", str(path))
    assert proc.returncode == 2 and message in proc.stderr
    assert ok(feature(state_dir, "history", "--json")) == before  # nothing written


def test_an_existing_flag_is_only_replaced_on_request(tmp_path: Path, state_dir: Path) -> None:
    ok(feature(state_dir, "create", "a"))
    ok(feature(state_dir, "override", "a", "--company", "acme", "--on"))
    path = tmp_path / "client.json"
    path.write_text(json.dumps({"features": [{"name": "a", "enabled": True, "strategies": [
        {"name": "flexibleRollout", "parameters": {"rollout": "0"}}]}]}))  # fmt: skip
    proc = feature(state_dir, "import", "--unleash", str(path))
    assert proc.returncode == 2 and "--replace" in proc.stderr
    ok(feature(state_dir, "import", "--unleash", str(path), "--replace"))
    shown = json.loads(ok(feature(state_dir, "show", "a", "--json")))
    assert shown["overrides"] == {"company": {}, "user": {}} and shown["percentage"] == 0


def test_list_and_show_fit_80_columns(state_dir: Path) -> None:
    with FlagService(state_dir / "journal.db", None, operator=ALICE) as service:
        populate(service)
    narrow = {"COLUMNS": "80", "LINES": "24"}
    listed = ok(feature(state_dir, "list", env=narrow))
    lines = listed.splitlines()
    assert len(lines) == 7 and all(len(line) <= 80 for line in lines), listed
    row = next(line for line in lines if line.startswith("Feature.NewCheckout"))
    assert "4 strategies, 3 rules" in row
    assert "everyone (no strategy)" in listed and "50% by company" in listed
    shown = ok(feature(state_dir, "show", "Feature.NewCheckout", env=narrow))
    lines = shown.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines), shown
    assert "2. flexibleRollout: 25% by default in group AB12A" in shown
    assert "and version SEMVER_GT 2.0.0" in shown
    assert "company overrides: on -; off company-7" in shown


def test_set_strategies_from_a_file(tmp_path: Path, state_dir: Path) -> None:
    ok(feature(state_dir, "create", "Feature.Beta"))
    ok(feature(state_dir, "enable", "Feature.Beta"))
    strategies = [
        {"name": "flexibleRollout", "parameters": {"rollout": "100", "stickiness": "userId"},
         "constraints": [{"contextName": "country", "operator": "IN", "values": ["fr"],
                          "inverted": True}],
         "segments": [{"id": 1, "name": "testers", "constraints": [
             {"contextName": "email", "operator": "STR_ENDS_WITH", "values": ["@acme.fr"],
              "caseInsensitive": True}]}]},
    ]  # fmt: skip
    path = tmp_path / "strategies.json"
    path.write_text(json.dumps(strategies))
    out = ok(feature(state_dir, "set-strategies", "Feature.Beta", str(path), "--reason", "beta"))
    assert "strategies set (1)" in out
    yes = ("--user", "u1", "--property", "country=de", "--property", "email=a@ACME.fr")
    assert ": ON" in ok(feature(state_dir, "check", "Feature.Beta", *yes))
    no = ok(feature(state_dir, "check", "Feature.Beta", "--user", "u1", "--property",
                    "country=fr", "--property", "email=a@acme.fr"))  # fmt: skip
    assert "not country IN [fr] failed" in " ".join(no.split())
    history = json.loads(ok(feature(state_dir, "history", "Feature.Beta", "--json")))
    assert history[0]["action"] == "set-strategies" and history[0]["reason"] == "beta"
    path.write_text(json.dumps([{"name": "default", "constraints": [{"contextName": "x"}]}]))
    bad = feature(state_dir, "set-strategies", "Feature.Beta", str(path))
    assert bad.returncode == 2 and "unsupported operator None" in bad.stderr
