"""Unleash's naming rules: a team's flag names and groupIds are kept exactly as they are.

Unleash's server accepts a flag name when it is 1 to 100 characters that
``encodeURIComponent`` leaves unchanged (A-Z a-z 0-9 and ``- _ . ! ~ * ' ( )``), and not
``.`` or ``..``; its clients must also serve UTF-8 names (client specification 18). The
hash is over the exact bytes, so lower-casing a name or a groupId would move users
between buckets: names are never folded.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from backend.flags.config import FlagsConfig
from backend.flags.evaluate import bucket, evaluate
from backend.flags.model import Context, FlagError, validate_group, validate_name
from backend.flags.service import FlagService
from backend.flags.store import FlagStore
from backend.identity import Operator
from backend.schema import parse
from tui.commands.feature import feature

ALICE = Operator("alice", "bastion", "")

GOOD = [
    "Feature.NewCheckout",
    "ui-improvements",
    "Feature.UTF-8.Hellø_Wørld",  # client specification 18
    "Feature.UTF-8.😊_φriend_你好_🌍",  # client specification 18
    "a(b)!~*'c",  # every character encodeURIComponent leaves alone
    "x" * 100,
    "...",
]
BAD = ["", ".", "..", "a b", "a/b", "a:b", 'a"b', "a\\b", "a\nb", "a\tb", "x" * 101, "a\u200bb"]


@pytest.mark.parametrize("name", GOOD)
def test_unleash_names_are_accepted_unchanged(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("bad", BAD)
def test_names_unleash_refuses_are_refused(bad: str) -> None:
    with pytest.raises(FlagError, match="flag name"):
        validate_name(bad)


def test_group_ids_keep_their_case() -> None:
    assert validate_group("AB12A") == "AB12A"
    assert validate_group("Checkout Launch 2026") == "Checkout Launch 2026"  # free text
    with pytest.raises(FlagError, match="group"):
        validate_group("a\nb")
    # murmur3("AB12A:122") = 1062108722 -> bucket 23; the lower-cased group is elsewhere
    assert bucket("AB12A", "122") == 23
    assert bucket("ab12a", "122") != 23


@pytest.fixture
def service(state_dir: Path) -> Iterator[FlagService]:
    svc = FlagService(state_dir / "journal.db", None, operator=ALICE)
    yield svc
    svc.close()


def test_case_and_utf8_names_are_distinct_stored_flags(service: FlagService) -> None:
    service.create("Feature.NewCheckout", group="AB12A")
    service.create("feature.newcheckout")
    service.create("Feature.UTF-8.😊_φriend_你好_🌍")
    names = [f.name for f in service.flags()]
    assert sorted(names) == sorted(
        ["Feature.NewCheckout", "feature.newcheckout", "Feature.UTF-8.😊_φriend_你好_🌍"]
    )
    flag = service.get("Feature.NewCheckout")
    assert flag.group == "AB12A"
    service.enable("Feature.NewCheckout", 23)
    flag = service.get("Feature.NewCheckout")
    # bucket 23 of group AB12A for company 122: on at 23 %, the case of the group kept
    assert evaluate(flag, Context(company="122")).value is True
    service.set_percentage("Feature.NewCheckout", 22)
    assert evaluate(service.get("Feature.NewCheckout"), Context(company="122")).value is False


def test_release_flags_in_config_follow_the_same_rule() -> None:
    assert parse(FlagsConfig, {"release_flags": ["Feature.NewCheckout"]}).release_flags == [
        "Feature.NewCheckout"
    ]
    with pytest.raises(ValueError, match="flag name"):
        parse(FlagsConfig, {"release_flags": ["a b"]})


def test_cli_creates_and_shows_an_unleash_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PORTAL_OPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("PORTAL_OPS_CONFIG", raising=False)
    runner = CliRunner()
    out = runner.invoke(feature, ["create", "Feature.NewCheckout", "--group", "AB12A"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(feature, ["list"])
    assert "Feature.NewCheckout" in out.output
    out = runner.invoke(feature, ["create", "a b"])
    assert out.exit_code == 2 and "flag name" in out.output


def test_a_store_written_before_keeps_its_flags(tmp_path: Path) -> None:
    """A journal.db from the previous schema opens with every flag and override intact."""
    path = tmp_path / "journal.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE flags (name TEXT PRIMARY KEY, description TEXT, enabled INTEGER,
          percentage INTEGER, stickiness TEXT, grp TEXT, version INTEGER, created_at FLOAT,
          created_by TEXT, updated_at FLOAT, updated_by TEXT, deployment_id TEXT);
        CREATE TABLE flag_overrides (flag TEXT, kind TEXT, id TEXT, value INTEGER,
          set_at FLOAT, set_by TEXT, PRIMARY KEY (flag, kind, id));
        CREATE TABLE flag_audit (seq INTEGER PRIMARY KEY, ts FLOAT, flag TEXT, action TEXT,
          before TEXT, after TEXT, reason TEXT, operator TEXT, operator_detail TEXT,
          deployment_id TEXT);
        CREATE TABLE flag_state (key TEXT PRIMARY KEY, value TEXT);
        INSERT INTO flags VALUES ('ui-improvements', 'New UI', 1, 50, 'company', '', 4,
          1.0, 'alice', 2.0, 'alice', NULL);
        INSERT INTO flag_overrides VALUES ('ui-improvements', 'company', 'AB12A', 1, 2.0, 'a');
        INSERT INTO flag_audit (seq, ts, flag, action, reason, operator, operator_detail)
          VALUES (7, 2.0, 'ui-improvements', 'enable', '', 'alice', '{}');
        """
    )
    conn.commit()
    conn.close()
    store = FlagStore(path)
    try:
        flag = store.require("ui-improvements")
        assert (flag.enabled, flag.percentage, flag.stickiness, flag.version) == (
            True,
            50,
            "company",
            4,
        )
        assert dict(flag.company_overrides) == {"AB12A": True}
        assert store.revision() == 7
        # the same answers as before the upgrade
        assert evaluate(flag, Context(company="AB12A")).value is True
        expected = bucket("ui-improvements", "c-1") <= 50
        assert evaluate(flag, Context(company="c-1")).value is expected
    finally:
        store.close()
