"""Unleash's model inside portal-ops: several strategies, constraints, segments, stickiness,
with the overrides, the kill switch and the audit on top, and `feature check` explaining.

Bucket numbers quoted below are murmur3_x86_32("{group}:{id}", seed 0) % 100 + 1, the
function checked against Unleash's published vectors in test_flags_bucketing.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.flags.constraints import Constraint
from backend.flags.evaluate import bucket, evaluate, explain
from backend.flags.model import Context, Flag, FlagError, Reason, Rule
from backend.flags.service import FlagService
from backend.flags.store import FlagStore
from backend.flags.strategies import Segment, Strategy
from backend.identity import Operator

ALICE = Operator("alice", "bastion", "")


def rollout(pct: int, stickiness: str = "default", group: str = "", *c: Constraint) -> Strategy:
    return Strategy("flexibleRollout", {"rollout": str(pct), "stickiness": stickiness,
                                        "groupId": group}, tuple(c))  # fmt: skip


COUNTRY_FR = Constraint("country", "IN", ("fr",))
PRO = Constraint("plan", "STR_STARTS_WITH", ("pro",), case_insensitive=True)


@pytest.fixture
def service(state_dir: Path) -> Iterator[FlagService]:
    svc = FlagService(state_dir / "journal.db", None, operator=ALICE)
    yield svc
    svc.close()


def test_any_enabled_strategy_enables(service: FlagService) -> None:
    service.create("Feature.Several")
    service.set_strategies(
        "Feature.Several",
        [Strategy("default", {}, (COUNTRY_FR,)), rollout(100, "userId", "", PRO)],
        reason="fr everyone, pro users elsewhere",
    )
    service.enable("Feature.Several")
    flag = service.get("Feature.Several")
    fr = evaluate(flag, Context(properties={"country": "fr"}))
    assert fr[:3] == (True, Reason.TARGETING_MATCH, Rule.STRATEGY) and fr.strategy == 0
    pro = evaluate(flag, Context(user="7", properties={"country": "us", "plan": "PRO-1"}))
    assert pro.value is True and pro.strategy == 1
    nobody = evaluate(flag, Context(user="7", properties={"country": "us", "plan": "free"}))
    assert nobody[:3] == (False, Reason.DEFAULT, Rule.NO_MATCH)
    # 100 % by userId without a userId: off, as Unleash answers
    assert evaluate(flag, Context(properties={"plan": "pro"})).value is False


def test_overrides_and_kill_switch_stay_on_top_of_strategies(service: FlagService) -> None:
    service.create("f")
    service.set_strategies("f", [Strategy("default", {}, (COUNTRY_FR,))])
    service.enable("f")
    service.override("f", "company", "acme", True)
    service.override("f", "user", "42", False)
    flag = service.get("f")
    assert evaluate(flag, Context(company="acme"))[:3] == (
        True,
        Reason.TARGETING_MATCH,
        Rule.COMPANY_OVERRIDE,
    )
    fr_but_forced_off = Context(company="x", user="42", properties={"country": "fr"})
    assert evaluate(flag, fr_but_forced_off)[:3] == (False, Reason.TARGETING_MATCH,
                                                     Rule.USER_OVERRIDE)  # fmt: skip
    assert evaluate(flag, Context(company="acme"), emergency=True)[:2] == (False, "DISABLED")
    # the audit shows the strategies that changed, one line each
    entry = service.history("f")[-2]
    assert entry.action == "set-strategies"
    changes = entry.to_json()["changes"]
    assert changes["strategies.1"][0] is None  # the simple rollout had no strategy lines
    assert json.loads(changes["strategies.1"][1])["constraints"][0]["values"] == ["fr"]


def test_rollout_at_100_needs_the_stickiness_field_like_unleash() -> None:
    by_company = Flag("f", enabled=True, percentage=100)
    assert evaluate(by_company, Context(company="c")).value is True
    missing = evaluate(by_company, Context(user="u"), default=True)
    assert missing[:3] == (False, Reason.DEFAULT, Rule.NO_STICKINESS)
    by_tenant = Flag("f", enabled=True, strategies=(rollout(100, "tenant"),))
    assert evaluate(by_tenant, Context()).value is False
    assert evaluate(by_tenant, Context(properties={"tenant": "t"})).value is True


def test_default_stickiness_is_user_then_session_then_random() -> None:
    flag = Flag("Feature.NewCheckout", enabled=True, strategies=(rollout(37),))
    # user 0 -> bucket(Feature.NewCheckout, "0"); the session is ignored when a user is there
    for user in ("0", "id-1", "2"):
        expected = bucket("Feature.NewCheckout", user) <= 37
        assert evaluate(flag, Context(user=user, session="s-1")).value is expected
        res = evaluate(flag, Context(session=user))
        assert res.bucket == bucket("Feature.NewCheckout", user)
    # neither: a random bucket on each evaluation, about 37 % on
    hits = sum(evaluate(flag, Context()).value for _ in range(4000))
    assert 0.30 < hits / 4000 < 0.44
    everyone = Flag("e", enabled=True, strategies=(rollout(100),))
    assert all(evaluate(everyone, Context()).value for _ in range(100))


def test_random_stickiness() -> None:
    half = Flag("r", enabled=True, strategies=(rollout(50, "random"),))
    ctx = Context(user="same-user")
    hits = sum(evaluate(half, ctx).value for _ in range(4000))
    assert 0.44 < hits / 4000 < 0.56  # not sticky: the same user both ways
    none = Flag("r", enabled=True, strategies=(rollout(0, "random"),))
    assert not any(evaluate(none, ctx).value for _ in range(200))


def test_group_id_upper_case_and_custom_field() -> None:
    flag = Flag("x", enabled=True, strategies=(rollout(23, "companyId", "AB12A"),))
    assert evaluate(flag, Context(company="122")).bucket == 23  # murmur3("AB12A:122") % 100 + 1
    assert evaluate(flag, Context(properties={"companyId": "122"})).bucket == 23
    assert flag.group == "AB12A" and flag.percentage == 23


def test_segments_and_a_missing_segment() -> None:
    eu = Segment(2, "eu", (Constraint("country", "IN", ("fr", "de")),))
    flag = Flag("s", enabled=True, strategies=(Strategy("default", {}, (), (eu,)),))
    assert evaluate(flag, Context(properties={"country": "de"})).value is True
    assert evaluate(flag, Context(properties={"country": "us"})).value is False
    gone = Flag("s", enabled=True, strategies=(Strategy("default", {}, (), (Segment(404, "", None),)),))  # fmt: skip
    assert evaluate(gone, Context(properties={"country": "de"})).value is False


def test_strategies_survive_the_store_and_the_percentage_moves_the_rollout(
    state_dir: Path,
) -> None:
    path = state_dir / "journal.db"
    with FlagService(path, None, operator=ALICE) as svc:
        svc.create("Feature.Mixed")
        svc.set_strategies("Feature.Mixed", [Strategy("default", {}, (COUNTRY_FR,)),
                                             rollout(10, "userId", "G", PRO)])  # fmt: skip
        svc.enable("Feature.Mixed", 40)  # moves the first rollout, keeps everything else
    store = FlagStore(path)
    try:
        flag = store.require("Feature.Mixed")
    finally:
        store.close()
    assert [s.name for s in flag.strategies or ()] == ["default", "flexibleRollout"]
    assert flag.strategies and flag.strategies[1].parameters["rollout"] == "40"
    assert flag.strategies[1].constraints == (PRO,)
    assert flag.percentage == 40 and flag.stickiness == "userId" and flag.group == "G"
    assert Flag.from_json(flag.to_json()) == flag


def test_bad_strategies_are_refused_naming_the_part() -> None:
    with pytest.raises(FlagError, match="unsupported operator 'REGEX'"):
        Constraint.from_unleash({"contextName": "a", "operator": "REGEX", "value": "x"})
    with pytest.raises(FlagError, match="rollout"):
        Strategy.parse({"name": "flexibleRollout", "parameters": {"rollout": "150"}}, "s", [])


def test_check_explains_the_strategy_and_constraint() -> None:
    flag = Flag("Feature.X", enabled=True, strategies=(
        Strategy("default", {}, (COUNTRY_FR,)),
        rollout(50, "userId", "", Constraint("version", "SEMVER_GT", value="2.0.0")),
    ))  # fmt: skip
    ctx = Context(user="7", properties={"country": "us", "version": "2.1.0"})
    text = explain(evaluate(flag, ctx), flag, ctx, None)
    assert text.startswith("OFF: none of the 2 strategies is on")
    assert "constraint country IN [fr] failed (country 'us')" in text
    assert f"userId 7 is in bucket {bucket('Feature.X', '7')} > 50%" in text
    ctx = Context(user="7", properties={"country": "fr"})
    text = explain(evaluate(flag, ctx), flag, ctx, None)
    assert text.startswith("ON: strategy 1 of 2 is on")
    assert "constraints held (country IN [fr])" in text


def test_the_control_room_gets_the_strategies_in_a_few_words(service: FlagService) -> None:
    """The room's FlagView (tui/state.py) carries the summary `feature list` shows."""
    from tui.state import flag_from_dict

    service.create("Feature.X")
    service.set_strategies("Feature.X", [Strategy("default", {}, (COUNTRY_FR,)), rollout(30)])
    row = next(r for r in service.list_flags() if r.name == "Feature.X")
    assert row.summary == "2 strategies, 1 rule"
    assert flag_from_dict(row.to_json()).rules == "2 strategies, 1 rule"
    one = Flag("y", enabled=True, strategies=(Strategy("default", {}, (COUNTRY_FR,)),))
    assert flag_from_dict(one.to_json()).rules == "everyone if country IN [fr]"
    assert flag_from_dict(Flag("z", percentage=40).to_json()).rules == "40% by company"


def test_a_percentage_needs_a_rollout_to_move(service: FlagService) -> None:
    service.create("targeted")
    service.set_strategies("targeted", [Strategy("default", {}, (COUNTRY_FR,))])
    with pytest.raises(FlagError, match="no flexibleRollout strategy"):
        service.enable("targeted", 50)
    assert service.get("targeted").enabled is False  # nothing changed
    assert service.enable("targeted").changed  # enabling without a percentage is fine
