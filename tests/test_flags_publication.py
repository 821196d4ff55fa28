"""Publication across machines: two bastions (two SQLite stores) and one real Redis.

Each machine has its own store and audit; Redis is shared. What apps serve must be the
last action taken on any machine, and "published" must mean "written": a kill switch
from the second machine once was reported published while Redis never got it (the
revision counter was per machine, so Redis took it for an old change and skipped it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.flags.client import FlagClient
from backend.flags.model import Context
from backend.flags.service import FlagService
from backend.identity import Operator
from tests.fixtures import RedisServer

PREFIX = "t-pub"
ALICE = Operator("alice", "bastion-a", "")
BOB = Operator("bob", "bastion-b", "")


@pytest.fixture
def machines(fresh_redis: RedisServer, tmp_path: Path) -> Iterator[tuple[FlagService, FlagService]]:
    a = FlagService(tmp_path / "a" / "journal.db", fresh_redis.url, PREFIX, operator=ALICE)
    b = FlagService(tmp_path / "b" / "journal.db", fresh_redis.url, PREFIX, operator=BOB)
    yield a, b
    a.close()
    b.close()


def until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Wait for ``condition`` with a deadline (the app applies messages on its thread)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def served(redis: RedisServer) -> tuple[dict[str, Any], dict[str, Any] | None]:
    client = redis.client()
    flags = {k: json.loads(v) for k, v in client.hgetall(f"{PREFIX}:flags").items()}
    raw = client.get(f"{PREFIX}:flags:emergency")
    return flags, json.loads(raw) if raw else None


def test_kill_switch_from_the_second_machine_is_written_and_served(
    machines: tuple[FlagService, FlagService], fresh_redis: RedisServer
) -> None:
    a, b = machines
    for name in ("one", "two", "three"):
        assert a.create(name).published
        assert a.enable(name, 100).published
    app = FlagClient(fresh_redis.url, PREFIX)
    assert app.start(5)
    try:
        assert app.is_enabled("one", Context(company="c"))
        change = b.emergency_disable("incident from bastion b")
        assert change.published is True
        _, emergency = served(fresh_redis)
        assert emergency is not None and emergency["reason"] == "incident from bastion b"
        assert until(lambda: app.emergency_state.active)
        assert not app.is_enabled("one", Context(company="c"))
        # lifted from the first machine, which never saw it in its own store
        lifted = a.restore(reason="fixed")
        assert lifted.changed and lifted.published is True
        assert served(fresh_redis)[1] is None
        assert until(lambda: not app.emergency_state.active)
        # and switched on again from the first machine while the second still has it
        again = b.emergency_disable("again")
        assert again.published is True and served(fresh_redis)[1] is not None
    finally:
        app.close()


def test_changes_from_both_machines_are_all_served(
    machines: tuple[FlagService, FlagService], fresh_redis: RedisServer
) -> None:
    a, b = machines
    assert a.create("from-a").published
    assert b.create("from-b").published
    assert a.enable("from-a", 30).published
    assert b.enable("from-b", 70).published
    flags, _ = served(fresh_redis)
    assert {n: f["percentage"] for n, f in flags.items()} == {"from-a": 30, "from-b": 70}


def test_a_full_publish_from_one_machine_keeps_the_others_work(
    machines: tuple[FlagService, FlagService], fresh_redis: RedisServer
) -> None:
    a, b = machines
    a.create("from-a")
    b.create("from-b")
    b.emergency_disable("b says stop")
    publication = a.publish()  # `feature publish` on machine a
    assert publication is not None and publication.ok and publication.snapshot
    flags, emergency = served(fresh_redis)
    assert set(flags) == {"from-a", "from-b"}
    assert emergency is not None and emergency["reason"] == "b says stop"
    a.delete("from-a")
    assert a.publish() is not None
    assert set(served(fresh_redis)[0]) == {"from-b"}
    verification = a.verify()
    assert verification is not None and verification.ok, verification


def test_redis_restarted_empty_gets_each_machines_flags_back(
    machines: tuple[FlagService, FlagService], fresh_redis: RedisServer
) -> None:
    a, b = machines
    a.create("from-a")
    b.create("from-b")
    fresh_redis.flush()  # as a Redis restarted without persistence
    assert a.create("a2").published  # a's store goes out whole; b's flag is b's to send
    assert b.sync() is not None
    assert set(served(fresh_redis)[0]) == {"from-a", "a2", "from-b"}


def test_a_publication_redis_refuses_is_reported_unpublished(
    fresh_redis: RedisServer, redis_server_private: RedisServer, tmp_path: Path
) -> None:
    """A read-only replica accepts the connection but writes nothing: not published."""
    replica = redis_server_private
    replica.client().execute_command("REPLICAOF", "127.0.0.1", str(fresh_redis.port))
    with FlagService(tmp_path / "journal.db", replica.url, PREFIX, operator=ALICE) as svc:
        change = svc.emergency_disable("stop")
        assert change.changed and change.published is False
        assert change.publication is not None and "read only" in change.publication.error.lower()
