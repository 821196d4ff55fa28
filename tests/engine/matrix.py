"""The fault matrix: portal-ops killed (SIGKILL) at the start of every phase 2 to 9, just
after phase 9, and inside the commands of deploy phases 4, 5, 6 and rollback phases 4, 5;
the SSH link killed at the same boundaries and inside the same commands; a migrate timing
out. Each scenario is then recovered, by ``rollback`` from a second machine (another state
dir, no journal) and, for a killed deployment, by ``resume`` from the first (or left to the
engine's own recovery), and judged: one release on every host, the database matching it,
no process of the old run left, the lock released, the outcome truthful. Used by
tests/engine/test_fault_matrix.py (the ``suite`` subset) and bench/fault_matrix.py (all).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.config import parse_config
from backend.engine import Engine
from backend.engine.rollback import RollbackError
from backend.journal import Journal

from .faults import (
    kill_sshd_sessions,
    kill_when,
    phase_finished,
    phase_started,
    processes_with,
    spawn_cli,
    step_started,
    unique_marker,
    wait_until,
    write_toml,
)
from .helpers import current, make_repo, ssh_config

HOSTS = ("host-1", "host-2")


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str  # sigkill | sigkill-rollback | ssh | ssh-rollback | timeout
    at: str  # "phase:N" / "phaseend:N" or "step:NAME" (deploy) / "rbstep:NAME" (rollback)
    recovery: str  # rollback-elsewhere | resume | none
    slow: str = ""  # the step made slow so the fault lands inside it
    expect: str = "rolled_back"  # the outcome of a run left to recover on its own ("none")
    suite: bool = True  # in the test suite's subset; every scenario runs in the bench
    note: str = ""  # why resume does not apply, or what the engine must do


PHASE_TITLES = {
    2: "backup",
    3: "flag preparation",
    4: "code",
    5: "database",
    6: "switch",
    7: "post-validation",
    8: "rollout",
    9: "finalize",
}
# the suite runs one boundary per kind of state the hosts can be in: nothing changed yet
# (2), releases created but not live (4), the schema changed (5), some hosts switched (6),
# the outcome written (end of 9); the bench runs all of them
SUITE_BOUNDARIES = {2, 5, 6}


def _boundaries() -> list[Scenario]:
    out: list[Scenario] = []
    for n, title in PHASE_TITLES.items():
        at = f"phase:{n}"
        name = f"kill at phase {n} start ({title})"
        out.append(Scenario(name, "sigkill", at, "rollback-elsewhere", suite=n in SUITE_BOUNDARIES))
        out.append(Scenario(name, "sigkill", at, "resume", suite=n in (4, 9)))
    # the end of phase 9: the hosts' outcome goes out with the unlock inside phase 9, and
    # nothing awaits between phase 9's end and the local journal's outcome, so the kill
    # lands just after phase 9 ended (the local row finished or not: both must recover)
    end = "kill after phase 9 ends"
    out.append(Scenario(end, "sigkill", "phaseend:9", "rollback-elsewhere", suite=False))
    out.append(
        Scenario(
            end,
            "sigkill",
            "phaseend:9",
            "resume",
            expect="refused",
            note="the hosts recorded succeeded: resume refuses (exit 2), nothing to continue",
        )
    )
    return out


def _ssh_boundaries() -> list[Scenario]:
    # the link dropped as phase N starts, while no command runs: the next command finds it
    # lost before anything was sent, so it is sent after a reconnect whatever its kind
    # (phase 2's database dump and phase 4's checkout are not retry-safe, yet never ran), and
    # the deployment carries on to succeeded
    return [
        Scenario(
            f"SSH link killed at phase {n} start ({title})",
            "ssh",
            f"phase:{n}",
            "none",
            expect="succeeded",
            suite=n in (2, 4),
            note="recovers on its own: the link is reopened, nothing had been sent on it",
        )
        for n, title in PHASE_TITLES.items()
    ]


NO_RESUME_IN_ROLLBACK = (
    "no resume: resume continues a deployment; a killed rollback is finished by running"
    " rollback again (here from the second machine)"
)

SCENARIOS = [
    *_boundaries(),
    Scenario("kill inside phase 4", "sigkill", "step:install", "rollback-elsewhere", "install"),
    Scenario("kill inside phase 4", "sigkill", "step:install", "resume", "install", suite=False),
    Scenario("kill inside phase 5", "sigkill", "step:migrate", "rollback-elsewhere", "migrate"),
    Scenario("kill inside phase 5", "sigkill", "step:migrate", "resume", "migrate"),
    Scenario("kill inside phase 6", "sigkill", "step:reload", "rollback-elsewhere", "reload"),
    Scenario("kill inside phase 6", "sigkill", "step:reload", "resume", "reload", suite=False),
    Scenario(
        "kill inside rollback 4",
        "sigkill-rollback",
        "rbstep:reload",
        "rollback-elsewhere",
        note=NO_RESUME_IN_ROLLBACK,
    ),
    Scenario(
        "kill inside rollback 5",
        "sigkill-rollback",
        "rbstep:migrate_rollback",
        "rollback-elsewhere",
        note=NO_RESUME_IN_ROLLBACK,
    ),
    *_ssh_boundaries(),
    Scenario(
        "SSH link killed in phase 4",
        "ssh",
        "step:install",
        "none",
        "install",
        "failed",
        note="install is not retry-safe and was running: failed, the old release untouched",
    ),
    Scenario("SSH link killed in phase 5", "ssh", "step:migrate", "none", "migrate"),
    Scenario("SSH link killed in phase 6", "ssh", "step:reload", "none", "reload", suite=False),
    Scenario(
        "SSH link killed in rollback 4", "ssh-rollback", "rbstep:reload", "none", "", "succeeded"
    ),
    Scenario(
        "SSH link killed in rollback 5",
        "ssh-rollback",
        "rbstep:migrate_rollback",
        "rollback-elsewhere",  # migrate:rollback is never repeated blindly: partial, then this
    ),
    Scenario("migrate times out in phase 5", "timeout", "step:migrate", "none", "migrate"),
]


@dataclass
class Verdict:
    scenario: Scenario
    converged: bool
    why: str
    seconds: float


async def deploy_template(sshd: Any, root: Path) -> tuple[dict[str, Any], str]:
    repo = make_repo(root)
    cfg = ssh_config(sshd, root, repo)
    engine = Engine(parse_config(cfg), journal=Journal(root / "state" / "journal.db"))
    result = await engine.deploy(revision="v1")
    assert result.ok, result.error
    return cfg, result.release


def copy_template(template: Path, root: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """The template's hosts and database under ``root``, and its config pointing there."""
    for host in HOSTS:
        shutil.copytree(template / host, root / host, symlinks=True)
    shutil.copy(template / "db.txt", root / "db.txt")
    text = json.dumps(cfg).replace(str(template / "host-"), str(root / "host-"))
    text = text.replace(str(template / "db.txt"), str(root / "db.txt"))
    text = text.replace(str(template / "state"), str(root / "state"))
    return json.loads(text)


def engine_at(cfg: dict[str, Any]) -> Engine:
    config = parse_config(cfg)
    return Engine(config, journal=Journal(Path(config.state.dir) / "journal.db"))


def elsewhere(cfg: dict[str, Any], root: Path) -> dict[str, Any]:
    other = json.loads(json.dumps(cfg))
    other["state"] = {"dir": str(root / "state-elsewhere")}
    return other


def _match(at: str) -> Any:
    kind, _, what = at.partition(":")
    if kind == "phase":
        return phase_started(int(what))
    if kind == "phaseend":
        return phase_finished(int(what))
    if kind == "rbstep":
        return step_started(what, run="rollback")
    return step_started(what)


async def run_scenario(
    sshd: Any, template: Path, template_cfg: dict[str, Any], old: str, root: Path, s: Scenario
) -> Verdict:
    started = time.monotonic()
    cfg = copy_template(template, root, template_cfg)
    db_v1 = (root / "db.txt").read_text()
    marker = unique_marker("matrix")
    slow_cfg = json.loads(json.dumps(cfg))
    if s.slow == "migrate":
        slow_cfg["commands"]["migrate"] += f" && sh -c 'sleep 20' {marker}"
    elif s.slow and s.fault == "ssh":  # slow once: the automatic rollback reloads quickly
        once = root / "slow-once"
        slow_cfg["commands"][s.slow] = (
            f"if [ ! -e {once} ]; then touch {once}; sh -c 'sleep 20' {marker}; fi"
        )
    elif s.slow:
        slow_cfg["commands"][s.slow] = f"sh -c 'sleep 20' {marker}"
    if s.fault == "sigkill" and s.at.startswith("phase:"):
        # held at its start by a local hook, so the kill (seen in the journal a moment
        # later) lands before the phase does anything, however quick the phase is
        from backend.phases import DEPLOY_PHASES

        phase = DEPLOY_PHASES[int(s.at.split(":")[1]) - 1][0]
        hooks = slow_cfg.setdefault("hooks", {}).setdefault("before", [])
        hooks.append({"phase": phase, "run": "sleep 10", "on": "local"})
    journal_path = root / "state" / "journal.db"
    deployment_id = new_release = ""
    row: dict[str, Any] = {}
    if s.fault in ("sigkill", "sigkill-rollback"):
        if s.fault == "sigkill-rollback":
            done = await engine_at(cfg).deploy(revision="v2")
            assert done.ok, done.error
            rb_cfg = json.loads(json.dumps(cfg))
            step = s.at.split(":")[1]
            rb_cfg["commands"][step] = f"sh -c 'sleep 20' {marker}; " + rb_cfg["commands"].get(
                step, "true"
            )
            proc = spawn_cli(write_toml(rb_cfg, root / "rb.toml"), "rollback", done.deployment_id)
        else:
            proc = spawn_cli(write_toml(slow_cfg, root / "slow.toml"), "deploy")
        deployment_id = await kill_when(proc, journal_path, _match(s.at))
    elif s.fault == "ssh" and s.at.startswith("phase:"):
        # the link dropped the moment phase N starts (a bus callback runs in the emit)
        engine = engine_at(cfg)
        boundary = phase_started(int(s.at.split(":")[1]))
        cut: list[int] = []

        def on_event(event: Any) -> None:
            if not cut and boundary(event):
                cut.append(kill_sshd_sessions(sshd))

        engine.bus.subscribe(on_event)
        result = await engine.deploy(revision="v2")
        deployment_id, new_release = result.deployment_id, result.release
        row = {"outcome": result.outcome}
        if not cut or not cut[0]:
            row = {"outcome": "the link was never cut (no session at the boundary)"}
    elif s.fault == "ssh":
        engine = engine_at(slow_cfg)
        task = asyncio.create_task(engine.deploy(revision="v2"))
        await wait_until(lambda: bool(processes_with(f"sleep 20 {marker}")), 120, "migrate")
        kill_sshd_sessions(sshd)
        result = await task
        deployment_id = result.deployment_id
    elif s.fault == "ssh-rollback":
        done = await engine_at(cfg).deploy(revision="v2")
        assert done.ok, done.error
        deployment_id = done.deployment_id
        rb_cfg = json.loads(json.dumps(cfg))
        step = s.at.split(":")[1]
        once = root / "slow-once"  # slow the first time only: the retry after the reconnect
        rb_cfg["commands"][step] = (
            f"if [ ! -e {once} ]; then touch {once}; sh -c 'sleep 20' {marker}; fi; "
            + rb_cfg["commands"].get(step, "true")
        )
        rb_engine = engine_at(rb_cfg)
        task = asyncio.create_task(rb_engine.rollback(deployment_id, "link test"))
        await wait_until(lambda: bool(processes_with(f"sleep 20 {marker}")), 120, step)
        kill_sshd_sessions(sshd)
        rolled = await task
        row = {"outcome": rolled.outcome}
    elif s.fault == "timeout":
        slow_cfg["ssh"]["step_timeouts"] = {"migrate": 2}
        result = await engine_at(slow_cfg).deploy(revision="v2")
        deployment_id = result.deployment_id
    # no process of the old run may outlive it
    leftover = ""
    try:
        await wait_until(lambda: not processes_with(marker), 15, "leftovers")
    except AssertionError:
        left = []
        for pid in processes_with(marker):
            try:
                left.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:300])
            except OSError:
                pass
        leftover = f"a command of the killed run still ran 15 s after: {left}"
    expect_release, expect_db = old, db_v1
    outcome = ""
    if s.recovery == "rollback-elsewhere":
        rb = await engine_at(elsewhere(cfg, root)).rollback(deployment_id, "recovering")
        outcome = rb.outcome
        ok_outcome = rb.outcome == "succeeded"
    elif s.recovery == "resume" and s.expect == "refused":
        # the hosts recorded the outcome: resume must refuse, and the hosts stay as recorded
        try:
            res = await engine_at(cfg).resume(deployment_id)
            outcome = res.outcome
        except RollbackError as exc:
            outcome = "refused" if "nothing to resume" in str(exc) else f"refused: {exc}"
        ok_outcome = outcome == "refused"
        expect_release, expect_db = deployment_id, db_v1 + "002_more\n"
    elif s.recovery == "resume":
        res = await engine_at(cfg).resume(deployment_id)
        outcome = res.outcome
        ok_outcome = res.outcome == "succeeded"
        expect_release = res.release
        expect_db = db_v1 + "002_more\n"
    else:
        if s.fault not in ("ssh-rollback",) and not row:
            row = engine_at(cfg).journal.get_deployment(deployment_id) or {}
        outcome = str(row.get("outcome"))
        ok_outcome = outcome == s.expect
        if outcome == "succeeded" and s.fault == "ssh":
            expect_release, expect_db = new_release, db_v1 + "002_more\n"
    seconds = time.monotonic() - started
    problems = [leftover] if leftover else []
    if not ok_outcome:
        problems.append(f"outcome {outcome}")
    releases = {h: current(root, h) for h in HOSTS}
    if set(releases.values()) != {expect_release}:
        problems.append(f"releases {releases}, expected {expect_release}")
    if (root / "db.txt").read_text() != expect_db:
        problems.append(f"database {(root / 'db.txt').read_text()!r}")
    locks = [h for h in HOSTS if (root / h / ".portal-ops" / "lock").exists()]
    if locks:
        problems.append(f"lock left on {locks}")
    if processes_with(marker) and not leftover:
        problems.append("old process running")
    return Verdict(s, not problems, "; ".join(problems), seconds)
