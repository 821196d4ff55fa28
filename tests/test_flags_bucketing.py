"""Bucketing and evaluation: the pure function every front shares."""

from __future__ import annotations

import mmh3
import pytest

from backend.flags.evaluate import bucket, evaluate, explain, not_ready
from backend.flags.model import (
    Context,
    Emergency,
    Flag,
    FlagError,
    Reason,
    Rule,
    validate_name,
    validate_percentage,
)


@pytest.mark.parametrize(
    ("group", "ident", "expected"),
    [
        # Unleash client-specification vectors (murmur3_x86_32, seed 0, % 100 + 1)
        ("AB12A", "122", 23),
        ("AB12A", "155", 100),
        ("Feature.flexibleRollout.10", "174", 10),
        ("Feature.flexibleRollout.userId.55", "25", 55),
    ],
)
def test_known_vectors(group: str, ident: str, expected: int) -> None:
    assert bucket(group, ident) == expected


def test_murmur3_raw_value_matches_the_reference() -> None:
    assert mmh3.hash("AB12A:122", 0, signed=False) == 1062108722
    assert mmh3.hash("AB12A:122", 0, signed=False) % 100 + 1 == 23


def test_vectors_through_evaluate() -> None:
    flag = Flag("ab12a", enabled=True, percentage=50, group="AB12A")
    hit = evaluate(flag, Context(company="122"))
    assert hit == (True, Reason.SPLIT, Rule.PERCENTAGE, 23, None, 0)
    assert evaluate(flag, Context(company="155")).value is False
    at_boundary = Flag("x", enabled=True, percentage=10, group="Feature.flexibleRollout.10")
    assert evaluate(at_boundary, Context(company="174")).value is True  # 10 <= 10


COMPANIES = [f"company-{i}" for i in range(10_000)]


def _served(flag: Flag) -> set[str]:
    return {c for c in COMPANIES if evaluate(flag, Context(company=c)).value}


def test_growth_is_monotonic_10_50_100() -> None:
    at = {p: _served(Flag("ui-improvements", enabled=True, percentage=p)) for p in (10, 50, 100)}
    assert at[10] <= at[50] <= at[100]
    assert len(at[100]) == len(COMPANIES)


@pytest.mark.parametrize("name", ["ui-improvements", "new-billing", "mobile-nav"])
@pytest.mark.parametrize("pct", [1, 5, 10, 25, 50, 75, 90, 99])
def test_distribution_within_one_point(name: str, pct: int) -> None:
    share = 100 * len(_served(Flag(name, enabled=True, percentage=pct))) / len(COMPANIES)
    assert abs(share - pct) <= 1.0


def test_group_reshuffles_and_same_group_shares_buckets() -> None:
    a = _served(Flag("a", enabled=True, percentage=30, group="shared"))
    b = _served(Flag("b", enabled=True, percentage=30, group="shared"))
    c = _served(Flag("c", enabled=True, percentage=30))
    assert a == b  # same group: the same 30 % (a coordinated launch)
    assert a != c


def test_evaluation_order_and_reasons() -> None:
    flag = Flag(
        "f",
        enabled=True,
        percentage=0,
        company_overrides={"acme": True, "globex": False},
        user_overrides={"42": False, "7": True},
    )
    # user override beats company override
    assert evaluate(flag, Context(company="acme", user="42"))[:3] == (
        False,
        Reason.TARGETING_MATCH,
        Rule.USER_OVERRIDE,
    )
    assert evaluate(flag, Context(company="globex", user="7")).value is True
    assert evaluate(flag, Context(company="acme")).rule == Rule.COMPANY_OVERRIDE
    assert evaluate(flag, Context(company="initech"))[:3] == (False, Reason.STATIC, Rule.NOBODY)
    # flag off beats overrides
    off = Flag("f", enabled=False, company_overrides={"acme": True})
    assert evaluate(off, Context(company="acme"))[:3] == (False, Reason.DISABLED, Rule.OFF)
    # emergency beats everything
    assert evaluate(flag, Context(company="acme"), emergency=True)[:3] == (
        False,
        Reason.DISABLED,
        Rule.EMERGENCY,
    )
    everyone = Flag("f", enabled=True, percentage=100)
    assert evaluate(everyone, Context(company="x"))[:3] == (True, Reason.STATIC, Rule.EVERYONE)
    # as in Unleash: 100 % of the companies does not include a context without a company
    assert evaluate(everyone, Context())[:3] == (False, Reason.DEFAULT, Rule.NO_STICKINESS)


def test_stickiness_user_session_and_property() -> None:
    by_user = Flag("f", enabled=True, percentage=50, stickiness="user")
    assert evaluate(by_user, Context(company="x", user="122")).bucket == bucket("f", "122")
    by_session = Flag("f", enabled=True, percentage=50, stickiness="session")
    assert evaluate(by_session, Context(session="s1")).bucket == bucket("f", "s1")
    by_region = Flag("f", enabled=True, percentage=50, stickiness="region")
    res = evaluate(by_region, Context(properties={"region": "eu-west"}))
    assert res.bucket == bucket("f", "eu-west")
    # missing stickiness field: off as in Unleash (whatever the caller's default), DEFAULT
    missing = evaluate(by_user, Context(company="x"), default=True)
    assert missing[:3] == (False, Reason.DEFAULT, Rule.NO_STICKINESS)


def test_unknown_flag_and_not_ready_give_the_default() -> None:
    assert evaluate(None, Context(), default=True)[:2] == (True, Reason.ERROR)
    assert evaluate(None, Context()).error_code == "FLAG_NOT_FOUND"
    assert not_ready(True).error_code == "PROVIDER_NOT_READY"


def test_evaluation_never_raises() -> None:
    broken = Flag("f", enabled=True, percentage=50)
    object.__setattr__(broken, "strategies", (None,))  # a corrupted definition
    res = evaluate(broken, Context(company="1"), default=True)
    assert res[:3] == (True, Reason.ERROR, Rule.ERROR)
    assert evaluate(broken, "not a context", default=False).value is False  # type: ignore[arg-type]


def test_explain_names_the_rule() -> None:
    flag = Flag("ab12a", enabled=True, percentage=50, group="AB12A")
    ctx = Context(company="122")
    text = explain(evaluate(flag, ctx), flag, ctx, None)
    assert "bucket 23 <= 50%" in text
    em = Emergency(active=True, reason="Critical issue")
    assert "Critical issue" in explain(evaluate(flag, ctx, True), flag, ctx, em)


def test_flag_json_round_trip() -> None:
    flag = Flag(
        "f", "d", True, 30, "user", "grp", {"a": True}, {"u": False}, version=3, updated_at=1.5
    )
    assert Flag.from_json(flag.to_json()) == flag
    assert Flag.from_json(Flag("g").to_json()).group == ""  # default group stays implicit


@pytest.mark.parametrize("bad", ["", "..", "a b", "x" * 101, "a/b", "a:b", 'a"b'])
def test_bad_names(bad: str) -> None:
    with pytest.raises(FlagError):
        validate_name(bad)


@pytest.mark.parametrize("bad", [-1, 101, "50%", "12.5", 12.5, True, "", "abc", None])
def test_bad_percentages(bad: object) -> None:
    with pytest.raises(FlagError):
        validate_percentage(bad)


def test_good_inputs() -> None:
    assert validate_name("ui-improvements.v2_a") == "ui-improvements.v2_a"
    assert validate_percentage("50") == 50
    assert validate_percentage(0) == 0
