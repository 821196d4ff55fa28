"""A rollback's round trips, phase by phase: each channel a host opens is a round trip in
sequence for that host (its scripts run one after the other), so the count per host and per
phase is what a rollback costs on a real network. Steps that need no decision on this
machine in between ride the host's script of the phase before: the primary's leftover kill
and its ``migrate_status`` go in its switch script (under the lock, fenced, after the
switch), so the database phase opens one channel, ``migrate:rollback``'s; the verify reads
``current`` once per host (its own read, not again in Q01). Real sshd, real engine."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from backend.config import parse_config
from backend.engine import Engine
from backend.engine.rollback import RollbackRun
from backend.events import Kind
from backend.journal import Journal
from backend.transport.session import COMMAND as SESSION_COMMAND
from backend.transport.session import RemoteSession

from .helpers import (
    current,
    live_v1_then_a_reload_that_fails_once,
    make_repo,
    ssh_config,
    stored_record,
)

# channels per host and phase ("survey": the read that picks the deployment, before phase
# 1), a reload configured; host-1 is the primary (it also takes the database back)
WEB = {"survey": 1, "rb-switch": 1, "rb-report": 1}  # the survey's script takes the lock
PRIMARY = WEB | {"rb-database": 1}
BEFORE = {"host-1": 9, "host-2": 6}  # the same rollback before (and 13 / 11 before scripts)


class PhaseChannels:
    """Commands per (host, phase): channels asyncssh opens (its own ``create_session``) and
    frames sent to the host's session shell, counted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, paths: dict[str, str]) -> None:
        self.phase = "survey"
        self.seen: Counter[tuple[str, str]] = Counter()
        self.paths = paths
        original = asyncssh.SSHClientConnection.create_session
        owner: dict[int, str] = {}

        def count(conn: Any, text: str) -> None:
            host = owner.get(id(conn)) or next(
                (h for h, p in self.paths.items() if p + "/" in text or text.endswith(p)), "?"
            )
            if host != "?":
                owner[id(conn)] = host
            self.seen[(host, self.phase)] += 1

        async def counting(conn: Any, factory: Any, command: Any = (), *a: Any, **k: Any) -> Any:
            if command != SESSION_COMMAND:  # the host's shell itself: its frames count
                count(conn, command if isinstance(command, str) else "")
            return await original(conn, factory, command, *a, **k)

        monkeypatch.setattr(asyncssh.SSHClientConnection, "create_session", counting)
        original_frame = RemoteSession.run

        async def framing(session: RemoteSession, name: str, command: str, emit: Any) -> int:
            count(session.proc.get_extra_info("connection"), command)
            return await original_frame(session, name, command, emit)

        monkeypatch.setattr(RemoteSession, "run", framing)

    def on_event(self, event: Any) -> None:
        if event.kind == Kind.PHASE_STARTED and event.run == "rollback":
            self.phase = event.phase

    def by_host(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (host, phase), n in self.seen.items():
            out.setdefault(host, {})[phase] = n
        return out


async def v2_over_v1(cfg: dict[str, Any]) -> tuple[Engine, Any, Any]:
    """v1 then v2 deployed with ``cfg``: (the engine, v1's result, v2's result)."""
    config = parse_config(cfg)
    engine = Engine(config, journal=Journal(Path(config.state.dir) / "journal.db"))
    first = await engine.deploy(revision="v1", skip_validation=True)
    assert first.ok, first.error
    second = await engine.deploy(revision="v2", skip_validation=True)
    assert second.ok, second.error
    return engine, first, second


async def test_rollback_channels_per_host_and_phase(
    sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    cfg["commands"]["reload"] = "echo reloaded"

    def engine() -> Engine:
        config = parse_config(cfg)
        return Engine(config, journal=Journal(Path(config.state.dir) / "journal.db"))

    first = await engine().deploy(revision="v1", skip_validation=True)
    assert first.ok, first.error
    db_v1 = (tmp_path / "db.txt").read_text()
    second = await engine().deploy(revision="v2", skip_validation=True)
    assert second.ok, second.error
    assert (tmp_path / "db.txt").read_text() != db_v1
    counter = PhaseChannels(monkeypatch, {h: str(tmp_path / h) for h in ("host-1", "host-2")})
    back_engine = engine()
    back_engine.bus.subscribe(counter.on_event)
    back = await back_engine.rollback(second.deployment_id, "test")
    assert back.outcome == "succeeded", [p.detail for p in back.phases if p.status == "failed"]
    for host in ("host-1", "host-2"):
        assert current(tmp_path, host) == first.release
    assert (tmp_path / "db.txt").read_text() == db_v1  # measured, then rolled back
    verify = next(p for p in back.phases if p.name == "rb-verify")
    # no health_url, no public_url: Q02, Q03, Q06 would all skip, so they are not loaded
    assert "nothing to ask over HTTP" in verify.detail, verify.detail
    seen = counter.by_host()
    print(seen)
    assert seen == {"host-1": PRIMARY, "host-2": WEB}
    assert sum(seen["host-1"].values()) < BEFORE["host-1"]
    assert sum(seen["host-2"].values()) < BEFORE["host-2"]
    # each step still has its own events: the kill and the count on the primary, in the
    # switch phase, after the switch; the plan of a dry-run shows the commands
    events = back_engine.journal.events(second.deployment_id)
    steps = [
        (e.phase, e.data.get("step"))
        for e in events
        if e.kind == Kind.STEP_FINISHED
        and e.host == "host-1"
        and e.run == "rollback"
        and e.data.get("step") != "record"  # the host record, first in each script
    ]
    switch = [s for p, s in steps if p == "rb-switch"]
    assert switch == ["switch", "reload", "current", "migrate_status"], steps
    assert not [s for p, s in steps if p == "rb-verify"], steps  # read in the switch script
    assert [s for p, s in steps if p == "rb-database"] == ["migrate_rollback"], steps
    finished = [
        e.data
        for e in events
        if e.kind == Kind.STEP_FINISHED and e.data.get("step") == "migrate_status"
    ]
    assert finished and all(d["ok"] for d in finished)


def test_hosts_switch_back_in_two_halves_only_when_a_load_balancer_drains_them(
    tmp_path: Path,
) -> None:
    """Never every host drained at once: with a load balancer, hosts that must all move go
    in two halves; without one nothing is drained (the switch is a rename, the reload
    graceful), so they all go at once, one round trip."""
    from types import SimpleNamespace

    sshd = SimpleNamespace(host="127.0.0.1", port=22, user="u", known_hosts="k", client_key="c")
    cfg = ssh_config(sshd, tmp_path, tmp_path / "repo", hosts=4)
    names = [f"host-{i}" for i in range(1, 5)]

    def groups(raw: dict[str, Any], need: list[str], settled: list[str]) -> list[list[str]]:
        config = parse_config(raw)
        engine = Engine(config, journal=Journal(tmp_path / "j.db"))
        run = RollbackRun(engine, "d-1", {}, {"release": "r2"}, reason="t", trigger={})
        return run.switch_groups(need, settled)

    assert groups(cfg, names, []) == [names]
    assert groups(cfg, names[:2], names[2:]) == [names[:2]]
    lb = {
        "kind": "command",
        "drain_command": "true {{backend}}",
        "enable_command": "true {{backend}}",
    }
    with_lb = cfg | {"load_balancer": lb}
    assert groups(with_lb, names, []) == [names[:2], names[2:]]
    assert groups(with_lb, names[:3], names[3:]) == [names[:3]]  # host-4 keeps serving
    assert groups(with_lb, names[:1], names[1:]) == [names[:1]]


async def test_a_host_moved_after_its_switch_keeps_its_lock_and_the_rollback_is_partial(
    sshd, tmp_path: Path
) -> None:
    """rb-verify's read of ``current`` rides the switch script; the script that unlocks
    looks again first. A host moved in between (here by its worker restart, in phase 7) is
    not marked rolled back: its lock and record stay, the outcome is partial, and running
    the rollback again converges."""
    import json

    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)

    def engine() -> Engine:
        config = parse_config(cfg)
        return Engine(config, journal=Journal(Path(config.state.dir) / "journal.db"))

    first = await engine().deploy(revision="v1", skip_validation=True)
    assert first.ok, first.error
    second = await engine().deploy(revision="v2", skip_validation=True)
    assert second.ok, second.error
    live = tmp_path / "host-2" / "current"
    once = tmp_path / "moved-once"
    cfg["commands"]["restart_workers"] = (
        f"[ -e {once} ] || {{ touch {once}; ln -sfn releases/{second.release} {live}; }}"
    )
    back = await engine().rollback(second.deployment_id, "test")
    assert back.outcome == "partial"
    failed = {p.name: p.detail for p in back.phases if p.status == "failed"}
    assert list(failed) == ["rb-report"], failed
    assert f"host-2: current is {second.release}, not {first.release}" in failed["rb-report"]
    lock = tmp_path / "host-2" / ".portal-ops" / "lock"
    assert lock.exists()  # kept where it moved, naming the deployment (taken before it was
    # picked, by the survey's script, then renamed in the host's next script)
    owner = json.loads((lock / "owner.json").read_text())
    assert owner["deployment_id"] == second.deployment_id
    assert not (tmp_path / "host-1" / ".portal-ops" / "lock").exists()
    records = tmp_path / "host-2" / ".portal-ops" / "deployments"
    status = (stored_record(records / f"{second.deployment_id}.json") or {})["status"]
    assert status == "rolling_back"
    again = await engine().rollback(second.deployment_id, "again")
    assert again.outcome == "succeeded", [p.detail for p in again.phases if p.status == "failed"]
    for host in ("host-1", "host-2"):
        assert current(tmp_path, host) == first.release
        assert not (tmp_path / host / ".portal-ops" / "lock").exists()


async def test_a_refused_rollback_gives_back_the_locks_its_survey_took(
    sshd, tmp_path: Path
) -> None:
    """The survey that picks the deployment takes the free locks in the same script; a
    rollback then refused (an unknown id, an older deployment, a lock another deployment
    holds on one host) leaves none behind, and the other deployment's is left as it was."""
    import json

    from backend.engine.rollback import RollbackError

    engine, first, second = await v2_over_v1(ssh_config(sshd, tmp_path, make_repo(tmp_path)))
    theirs = tmp_path / "host-2" / ".portal-ops" / "lock"
    theirs.mkdir(parents=True)
    (theirs / "owner.json").write_text(json.dumps({"deployment_id": "other", "token": "t"}))
    for asked in ("bp-20990101-000000-aaaaaa", first.deployment_id):
        with pytest.raises(RollbackError):
            await engine.rollback(asked, "refused")
        assert not (tmp_path / "host-1" / ".portal-ops" / "lock").exists()
        assert json.loads((theirs / "owner.json").read_text())["token"] == "t"
    back = await engine.rollback(second.deployment_id, "held elsewhere")
    assert back.outcome == "failed"
    assert "deploy lock is" in back.phases[0].detail
    assert current(tmp_path, "host-1") == second.release  # nothing changed
    assert not (tmp_path / "host-1" / ".portal-ops" / "lock").exists()  # taken, given back


async def test_a_rollback_killed_before_it_named_its_deployment_leaves_a_lock_the_next_adopts(
    sshd, tmp_path: Path
) -> None:
    """Without an id the survey's lock cannot name the deployment yet (``picking``); a
    rollback killed before its first script on a host renamed it leaves that lock. Once
    its heartbeat is stale the next rollback adopts it (it changed nothing there); while it
    is live (a rollback still picking, elsewhere) it is refused, naming the holder."""
    import json
    import os

    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    cfg["lock"] = {"lease_seconds": 3, "heartbeat_seconds": 1}
    engine, first, second = await v2_over_v1(cfg)
    lock = tmp_path / "host-2" / ".portal-ops" / "lock"
    lock.mkdir(parents=True)
    left = {"deployment_id": "", "picking": True, "token": "killed", "operator": "ops@elsewhere"}
    (lock / "owner.json").write_text(json.dumps(left) + "\n")
    (lock / "heartbeat").touch()
    live = await engine.rollback(None, "while another rollback picks")
    assert live.outcome == "failed"
    assert "ops@elsewhere" in live.phases[0].detail, live.phases[0].detail
    assert current(tmp_path, "host-1") == second.release
    os.utime(lock / "heartbeat", (1, 1))  # its run stopped long ago
    assert not (tmp_path / "host-1" / ".portal-ops" / "lock").exists()  # given back
    back = await engine.rollback(None, "after a killed rollback")
    assert back.outcome == "succeeded", [p.detail for p in back.phases if p.status == "failed"]
    for host in ("host-1", "host-2"):
        assert current(tmp_path, host) == first.release
        assert not (tmp_path / host / ".portal-ops" / "lock").exists()


async def test_an_automatic_rollback_reads_and_locks_each_host_in_one_channel(
    sshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside a failing deployment there is no survey: the declare phase reads each host and
    takes (here: adopts) its lock in one script, not two channels."""
    cfg, v1_release = await live_v1_then_a_reload_that_fails_once(sshd, tmp_path)
    config = parse_config(cfg)
    engine = Engine(config, journal=Journal(Path(config.state.dir) / "j.db"))
    counter = PhaseChannels(monkeypatch, {h: str(tmp_path / h) for h in ("host-1", "host-2")})
    engine.bus.subscribe(counter.on_event)
    result = await engine.deploy(revision="v2", skip_validation=True)
    assert result.outcome == "rolled_back", result.error
    for host in ("host-1", "host-2"):
        assert current(tmp_path, host) == v1_release
        assert not (tmp_path / host / ".portal-ops" / "lock").exists()
    seen = counter.by_host()
    assert seen["host-1"]["rb-declare"] == 1 and seen["host-2"]["rb-declare"] == 1, seen


def test_the_primary_counts_in_its_switch_script_only_when_it_is_not_drained(
    tmp_path: Path,
) -> None:
    """Stopping a leftover migrate can take seconds (TERM, then KILL): a primary drained by
    a load balancer must not wait for it before it serves again, so with one the kill and
    the count stay in the database phase, after every host is back."""
    from types import SimpleNamespace

    sshd = SimpleNamespace(host="127.0.0.1", port=22, user="u", known_hosts="k", client_key="c")
    cfg = ssh_config(sshd, tmp_path, tmp_path / "repo")

    def reads(raw: dict[str, Any]) -> list[str]:
        config = parse_config(raw)
        engine = Engine(config, journal=Journal(tmp_path / "j.db"))
        hosts = engine.make_hosts(["host-1", "host-2"])
        checkpoint = {"release": "r2", "pending_before": 1}
        run = RollbackRun(engine, "d-1", hosts, checkpoint, reason="t", trigger={})
        return [s.name for s in run.database_reads("host-1")] + [
            s.name for s in run.database_reads("host-2")
        ]

    assert reads(cfg) == ["stop_leftovers", "migrate_status"]  # the primary only
    lb = {"kind": "command", "drain_command": "true", "enable_command": "true"}
    assert reads(cfg | {"load_balancer": lb}) == []
