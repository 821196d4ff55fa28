"""backend/schema.py: the config's sections read from raw data, every problem kept."""

from __future__ import annotations

from dataclasses import field
from enum import StrEnum
from typing import Annotated, Any, Literal

import pytest

from backend.config import Config, parse_config
from backend.durations import Duration
from backend.schema import (
    INTERNAL,
    Check,
    Length,
    Limits,
    Pattern,
    SchemaError,
    Section,
    Tagged,
    dump,
    parse,
    section,
)


class Level(StrEnum):
    LOW = "low"
    HIGH = "high"


def _even(value: int) -> int:
    if value % 2:
        raise ValueError("must be even")
    return value


@section
class Leaf(Section):
    name: Annotated[str, Pattern(r"^[a-z]+$"), Length(max=8)]
    count: Annotated[int, Limits(ge=0, lt=10), Check(_even)] = 0

    @classmethod
    def _shorthand(cls, raw: Any) -> Any:
        return {"name": raw} if isinstance(raw, str) else raw


@section
class Cat(Section):
    kind: Literal["cat"]
    lives: int = 9


@section
class Dog(Section):
    kind: Literal["dog"]
    good: bool = True


@section
class Tree(Section):
    title: Annotated[str, Length(min=1)]
    leaves: Annotated[list[Leaf], Length(min=1)]
    wait: Annotated[Duration, Limits(gt=0)] = 1.0
    level: Level = Level.LOW
    mode: Literal["a", "b"] = "a"
    pets: dict[str, Annotated[Cat | Dog, Tagged("kind")]] = field(default_factory=dict)
    limit: Annotated[float, Limits(le=5)] | None = None
    note: str = field(default="", metadata=INTERNAL)

    def _consistent(self) -> None:
        if self.mode == "b" and len(self.leaves) < 2:
            raise ValueError('mode "b" needs two leaves')


def problems(raw: Any) -> list[tuple[str, str]]:
    with pytest.raises(SchemaError) as caught:
        parse(Tree, raw)
    return [(".".join(map(str, p.loc)), p.message) for p in caught.value.problems]


def test_a_valid_table_becomes_the_section_with_its_defaults() -> None:
    tree = parse(
        Tree,
        {
            "title": "t",
            "leaves": ["oak", {"name": "elm", "count": 4}],
            "wait": "1m30s",
            "level": "high",
            "pets": {"tom": {"kind": "cat"}, "rex": {"kind": "dog", "good": False}},
        },
    )
    assert tree.leaves == [Leaf(name="oak"), Leaf(name="elm", count=4)]
    assert tree.wait == 90.0 and tree.level is Level.HIGH and tree.mode == "a"
    assert tree.pets == {"tom": Cat(kind="cat"), "rex": Dog(kind="dog", good=False)}
    assert tree.limit is None and tree.note == ""


def test_every_problem_is_listed_with_where_it_is() -> None:
    found = problems(
        {
            "leaves": ["Oak", {"name": "abcdefghi", "count": 3}, {"count": 12}, 7],
            "wait": "soon",
            "level": "mid",
            "mode": True,
            "pets": {"tom": {"kind": "cow"}, "rex": {"good": 1}, "fido": {"kind": "dog", "x": 1}},
            "limit": 6,
            "note": "set by code only",
            "extra": 1,
        }
    )
    assert found == [
        ("title", "required key is missing"),
        ("leaves.0.name", "String should match pattern '^[a-z]+$'"),
        ("leaves.1.name", "String should have at most 8 characters"),
        ("leaves.1.count", "must be even"),
        ("leaves.2.name", "required key is missing"),
        ("leaves.2.count", "Input should be less than 10"),
        ("leaves.3", "Input should be a table (key = value pairs)"),
        ("wait", "bad duration 'soon': use seconds (90) or units such as 90s, 5m, 1h30m"),
        ("level", "Input should be 'low' or 'high'"),
        ("mode", "Input should be 'a' or 'b'"),
        ("pets.tom.kind", "Input should be one of 'cat', 'dog'"),
        ("pets.rex.kind", "required key is missing (one of 'cat', 'dog')"),
        ("pets.fido.x", "unknown key"),
        ("limit", "Input should be less than or equal to 5"),
        ("note", "unknown key"),
        ("extra", "unknown key"),
    ]


def test_rules_across_fields_run_once_the_fields_are_valid() -> None:
    assert problems({"title": "t", "leaves": ["oak"], "mode": "b"}) == [
        ("", 'mode "b" needs two leaves')
    ]
    # a field problem alone: the section's own rule is not run on a half-read section
    assert problems({"title": "", "leaves": ["oak"], "mode": "b"}) == [
        ("title", "String should have at least 1 character")
    ]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("title", 5, "Input should be a valid string"),
        ("wait", True, "Input should be a valid number"),
        ("wait", 0, "Input should be greater than 0"),
        ("leaves", {}, "Input should be a valid list"),
        ("leaves", [], "List should have at least 1 item"),
        ("pets", [], "Input should be a table (key = value pairs)"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_not_coerced(
    key: str, value: Any, message: str
) -> None:
    raw: dict[str, Any] = {"title": "t", "leaves": ["oak"], key: value}
    assert problems(raw) == [(key, message)]


def test_a_bool_is_not_a_number_and_an_integral_float_is_an_int() -> None:
    assert problems({"title": "t", "leaves": [{"name": "a", "count": True}]}) == [
        ("leaves.0.count", "Input should be a valid integer")
    ]
    assert parse(Tree, {"title": "t", "leaves": [{"name": "a", "count": 4.0}]}).leaves[0].count == 4


def test_dump_reads_back_to_the_same_config_without_its_internal_fields() -> None:
    raw = {
        "portal": {"repository": "git@example.com:p.git", "deploy_path": "/srv/portal"},
        "hosts": [{"name": "web-1", "address": "10.0.0.1", "roles": ["web", "primary"]}],
        "ssh": {"connect_timeout": "5s", "step_timeouts": {"migrate": "30m"}},
        "notify": {"channels": {"ops": {"kind": "slack", "url_env": "SLACK_URL"}}},
        "monitor": {"rules": [{"name": "r", "metric": "p95", "threshold": 300}]},
        "validation": {"smoke_pages": ["/login"], "database": "php artisan db:monitor"},
    }
    config = parse_config(raw, "portal-ops.toml")
    plain = dump(config)
    assert "source" not in plain and "sources" not in plain and "limit" not in plain
    again = parse(Config, plain)
    again.source = config.source
    assert again == config
    assert config.ssh.step_timeouts == {"migrate": 1800.0}
    assert config.validation.database is not None
    assert config.validation.database.command == "php artisan db:monitor"
