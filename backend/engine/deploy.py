"""One deployment: the nine phases of the strategy, on one or many hosts.

Phases (DESIGN.md): 1 pre-deployment validation, 2 backup, 3 feature flag preparation,
4 code deployment, 5 database updates, 6 switch and restart (batches, canary first),
7 post-deployment validation, 8 gradual feature rollout, 9 finalization. Each phase is a
method; every command goes through :meth:`Run.sh`, so a dry-run walks this same code.
"""

from __future__ import annotations

import asyncio
import json
import os
import posixpath
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .. import recipes
from ..events import Kind, Severity
from ..phases import DEPLOY_PHASES
from ..redact import redact
from ..shell import in_dir, q
from ..transport import CommandResult, connect_all
from .analysis import Traffic, switch_batches
from .hoststate import own_backups, record_dir, record_for, write_record
from .layout import HostState, parse_probe, prune_candidates
from .lock import (
    Lease,
    LockHolder,
    held_lock,
    new_owner,
    parse_lock_output,
    redis_acquire,
    redis_release,
)
from .run import PhaseFailed, PhaseResult, Plan, Run
from .script import Step, first_failure
from .traffic import batches

# phases that change feature flags (in Redis, not on the hosts): their host record is
# written before they start, not held for a later command
FLAG_PHASES = {3, 8}

if TYPE_CHECKING:
    from .front import Engine

# phases after which the portal has been changed: a failure from here on is rolled back
FIRST_CHANGING_PHASE = 5


@dataclass
class DeployOptions:
    revision: str | None = None
    dry_run: bool = False
    force: bool = False
    skip_validation: bool = False
    limit: list[str] | None = None  # --hosts/--roles: only these hosts (the rest untouched)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"force": self.force, "skip_validation": self.skip_validation}
        if self.limit is not None:
            out["limit"] = list(self.limit)
        return out


@dataclass
class DeploymentResult:
    deployment_id: str
    outcome: str  # succeeded | failed | rolled_back | partial | paused | interrupted
    phases: list[PhaseResult]
    hosts: dict[str, dict[str, Any]]
    release: str
    revision: str
    seconds: float
    error: str | None = None
    dry_run: bool = False
    plan: Plan | None = None
    rollback: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == "succeeded"

    def to_dict(self) -> dict[str, Any]:
        out = {
            "deployment_id": self.deployment_id,
            "outcome": self.outcome,
            "release": self.release,
            "revision": self.revision,
            "seconds": round(self.seconds, 3),
            "dry_run": self.dry_run,
            "error": self.error,
            "phases": [p.to_dict() for p in self.phases],
            "hosts": self.hosts,
            "rollback": self.rollback,
        }
        out.update(self.extra)
        return out


class Deployment(Run):
    kind = "deploy"

    def __init__(
        self,
        engine: Engine,
        deployment_id: str,
        release_id: str,
        options: DeployOptions,
        *,
        resumed_from: dict[str, Any] | None = None,
    ) -> None:
        config = engine.config
        revision = options.revision or config.portal.revision
        plan = Plan(deployment_id, release_id, revision, DEPLOY_PHASES, limit=options.limit)
        # a limited deployment (--hosts/--roles) acts on its hosts alone, also when resumed
        self.fleet = [h.name for h in config.hosts if not options.limit or h.name in options.limit]
        super().__init__(
            config,
            engine.bus,
            deployment_id,
            engine.make_hosts(self.fleet),
            dry_run=options.dry_run,
            plan=plan,
        )
        self.engine = engine
        self.release_id = release_id
        self.revision = revision
        self.options = options
        self.resolved_revision = ""
        self.states: dict[str, HostState] = {}
        self.previous: dict[str, str | None] = {}
        self.active: list[str] = list(self.fleet)
        self.failed_hosts: dict[str, str] = {}
        self.switched: list[str] = []
        self.migrations_applied = 0
        self.pending_before: int | None = None
        self.switch_started: float | None = None
        self.lock_owner = new_owner(deployment_id, engine.operator, os.getpid())
        self.lock_taken: list[str] = []
        self.early_locks: dict[str, CommandResult] = {}  # phase 1: locks taken with the probe
        self.recorded_early: list[str] = []  # phase 1: hosts recorded in their lock's script
        self.outcome_recorded = ""  # the outcome the hosts' records got with the unlock
        self.early_resolve: CommandResult | None = None  # phase 1: resolved with the probe
        # phase 4: the primary's migrate_status, asked in its install script (host, result)
        self.early_status: tuple[str, CommandResult] | None = None
        self.backups: dict[str, Any] = {}
        self.started = time.time()
        self.rollback_summary: dict[str, Any] | None = None
        self.resumed_from = resumed_from or {}
        self.created: list[str] = []  # hosts where this run created the release folder
        self.traffic: dict[str, str] = {}  # host -> drained | serving, as its record says
        self.baseline: dict[str, Any] | None = None  # migrate_status before migrate ran
        self.traffic_before: dict[str, Traffic] = {}  # HAProxy counters before the switch
        self.web_baseline: dict[str, float] | None = None  # web checks before the switch
        self.number = 0  # the phase in flight

    # -- helpers ---------------------------------------------------------------------------

    def release_dir(self, host: str) -> str:
        return self.layout(host).release(self.release_id)

    def checkpoint(self) -> dict[str, Any]:
        """What resume and rollback need to know, journaled at the end of every phase."""
        return {
            "release": self.release_id,
            "revision": self.resolved_revision or self.revision,
            "previous": self.previous,
            "switched": self.switched,
            "active": self.active,
            "failed_hosts": self.failed_hosts,
            "migrations_applied": self.migrations_applied,
            "pending_before": self.pending_before,
            "baseline": self.baseline,
            "backups": self.backups,
            "lock_token": self.lock_owner["token"],
            "created": self.created,
        }

    # -- the hosts' record of this deployment (hoststate) -----------------------------------

    def host_record(self, name: str, status: str) -> dict[str, Any]:
        phase = DEPLOY_PHASES[self.number - 1][0] if self.number else ""
        return record_for(
            deployment_id=self.deployment_id,
            release=self.release_id,
            revision=self.resolved_revision or self.revision,
            status=status,
            number=self.number,
            phase=phase,
            previous=self.previous.get(name),
            started_at=self.started,
            operator=str(self.engine.operator),
            machine=self.engine.operator.host,
            pid=os.getpid(),
            lock_token=self.lock_owner["token"],
            baseline=self.baseline,
            migrations_applied=self.migrations_applied if self.number > 5 else None,
            backups=own_backups(self.backups, name),
            options=self.options.to_dict(),
            created=name in self.created,
            traffic=self.traffic.get(name, ""),
        )

    async def mark_traffic(self, name: str, traffic: str) -> None:
        """The host's record says it is drained before the drain (a crash warning read from
        any machine then names it), and serving once it is back."""
        self.traffic[name] = traffic
        await self.write_host_records(names=[name], strict=traffic == "drained")

    async def write_host_records(
        self,
        status: str = "running",
        *,
        strict: bool = True,
        names: list[str] | None = None,
        hold: bool = False,
        may_fail: bool = False,
    ) -> None:
        """Record the deployment on its hosts before an irreversible step. ``strict``: a host
        that cannot record it fails the phase (the truth must be written before the change).
        ``hold``: the record goes out with the host's next command, as the first step of
        its script (a failed write stops the script before the step); Run.flush sends it
        earlier where a change needs no command on the host (a load balancer's drain)."""
        if self.dry_run:
            return
        targets = [n for n in (names if names is not None else self.active) if n in self.hosts]
        for name in targets:
            command = write_record(self.layout(name).meta, self.host_record(name, status))
            if hold:
                self.hold(name, Step("record", command, quiet=True, may_fail=may_fail))
            else:  # written now: a record held from earlier is out of date
                self.prelude.pop(name, None)
        if hold:
            return

        async def one(name: str) -> None:
            meta = self.layout(name).meta
            command = write_record(meta, self.host_record(name, status))
            result = await self.hosts[name].run(command, timeout=30, retry_safe=True)
            if not result.ok:
                raise PhaseFailed(f"{name}: cannot record the deployment: {result.tail()}", [name])

        errors = await self.on_hosts(targets, one)
        bad = {n: e for n, e in errors.items() if e}
        if bad and strict:
            raise PhaseFailed(
                "cannot record the deployment on the hosts: " + "; ".join(map(str, bad.values())),
                list(bad),
            )

    # -- the run ---------------------------------------------------------------------------

    async def execute(self, start_at: int = 1) -> DeploymentResult:
        if start_at == 1:
            self.emit(
                Kind.DEPLOYMENT_STARTED,
                target=self.config.portal.name,
                revision=self.revision,
                release=self.release_id,
                operator=self.engine.operator.to_dict(),
                hosts=list(self.fleet),
                options=self.options.to_dict(),
                dry_run=self.dry_run,
                pid=os.getpid(),
            )
            if self.options.force or self.options.skip_validation:
                self.incident(
                    Severity.WARNING,
                    "emergency deployment: "
                    + " ".join(
                        f
                        for f, on in (
                            ("--force", self.options.force),
                            ("--skip-validation", self.options.skip_validation),
                        )
                        if on
                    ),
                    operator=str(self.engine.operator),
                )
        outcome, error = "succeeded", None
        bodies = [
            self.phase_validate_pre,
            self.phase_backup,
            self.phase_flags_prepare,
            self.phase_code,
            self.phase_database,
            self.phase_switch,
            self.phase_validate_post,
            self.phase_rollout,
            self.phase_finalize,
        ]
        try:
            if start_at > 1:
                await self.reconnect_for_resume()
            for number, ((name, title), body) in enumerate(
                zip(DEPLOY_PHASES, bodies, strict=True), 1
            ):
                if number < start_at:
                    continue
                self.number = number
                result = await self.timed_phase(number, name, title, self.recorded(number, body))
                self.emit(
                    Kind.HOST_STATE, host=None, state="checkpoint", checkpoint=self.checkpoint()
                )
                if result.status == "failed":
                    error = f"phase {number} ({title}) failed: {result.detail}"
                    outcome = await self.on_failure(number, result)
                    break
        except asyncio.CancelledError:
            # interrupted is not finished: resume continues it, rollback undoes it
            outcome, error = "interrupted", "portal-ops was stopped during the deployment"
            self.incident(
                Severity.ERROR,
                f"{self.deployment_id} interrupted in phase {self.number}; the lock is kept."
                f" Continue with `portal-ops resume {self.deployment_id}` or undo with"
                f" `portal-ops rollback {self.deployment_id}`",
            )
            if self.number > 1 or self.lock_taken:
                try:
                    await asyncio.wait_for(self.write_host_records("interrupted", strict=False), 10)
                except (Exception, asyncio.CancelledError):
                    pass
            await self.close_hosts()
            self.finish(outcome, error)
            raise
        except BaseException:
            if outcome not in ("paused", "interrupted"):
                await self.close_hosts()
            raise
        if outcome == "succeeded" and self.failed_hosts:
            # within max_fail_percentage, but not everywhere: say so, and name the hosts
            outcome = "partial"
            error = "not deployed on " + ", ".join(sorted(self.failed_hosts))
        try:
            if (
                self.number > 1
                and not self.dry_run
                and outcome not in ("rolled_back", self.outcome_recorded)
            ):
                # the automatic rollback records its own outcome; a paused one stays
                # resumable. Written before the hosts close: no second login for it
                await self.write_host_records(outcome, strict=False)
        finally:
            if outcome not in ("paused", "interrupted"):
                await self.close_hosts()
        return self.finish(outcome, error)

    def recorded(
        self, number: int, body: Callable[[], Awaitable[str | None]]
    ) -> Callable[[], Awaitable[str | None]]:
        """Phase ``number``'s body, preceded by the hosts' record that it is in flight."""

        async def run() -> str | None:
            if number > 1:
                # phases that change flags in Redis write it now; the others hold it for
                # their first command on each host (one script: one round trip fewer)
                flags = number in FLAG_PHASES and bool(self.config.flags.release_flags)
                await self.write_host_records("running", hold=not flags)
            return await body()

        return run

    def finish(self, outcome: str, error: str | None) -> DeploymentResult:
        hosts = {
            name: {
                "release": self.host_state.get(name, {}).get("release") or self.previous.get(name),
                "state": self.host_state.get(name, {}).get("state", "pending"),
                "previous": self.previous.get(name),
                **({"error": self.failed_hosts[name]} if name in self.failed_hosts else {}),
            }
            for name in self.fleet
        }
        result = DeploymentResult(
            deployment_id=self.deployment_id,
            outcome=outcome,
            phases=self.phase_results,
            hosts=hosts,
            release=self.release_id,
            revision=self.resolved_revision or self.revision,
            seconds=time.time() - self.started,
            error=error,
            dry_run=self.dry_run,
            plan=self.plan if self.dry_run else None,
            rollback=self.rollback_summary,
        )
        summary = result.to_dict()
        self.phase = ""
        self.emit(
            Kind.DEPLOYMENT_FINISHED,
            outcome=outcome,
            seconds=round(result.seconds, 3),
            error=error,
            switched=self.switched,
            summary=summary,
        )
        if outcome == "paused":
            self.engine.journal.update_deployment(
                self.deployment_id, outcome="paused", summary=summary
            )
        else:
            self.engine.journal.finish_deployment(self.deployment_id, outcome, summary)
        return result

    async def close_hosts(self) -> None:
        await asyncio.gather(*(h.close() for h in self.hosts.values()), return_exceptions=True)

    async def on_failure(self, number: int, result: PhaseResult) -> str:
        """Stop with the live release untouched (before the switch), or roll back / pause."""
        switched = ", ".join(self.switched) or "none"
        if self.dry_run:
            return "failed"
        if number < FIRST_CHANGING_PHASE:
            await self.abandon_release()
            recorded = list(self.recorded_early) if number == 1 else []
            if recorded:  # the record taken with the lock says the run failed, with the unlock
                await self.write_host_records("failed", names=recorded, hold=True, may_fail=True)
            await self.release_lock()
            if recorded:
                await self.flush(recorded)
            self.incident(
                Severity.ERROR,
                f"deployment stopped in phase {number} ({result.title}); the live release is"
                f" untouched on every host. {result.detail}",
            )
            return "failed"
        if self.config.portal.on_failure == "pause":
            self.incident(
                Severity.CRITICAL,
                f"deployment paused after phase {number} ({result.title}) failed: {result.detail}."
                f" Hosts already switched: {switched}. The lock is kept. Continue with"
                f" `portal-ops resume {self.deployment_id}` or undo with"
                f" `portal-ops rollback {self.deployment_id}`.",
            )
            return "paused"
        self.incident(
            Severity.CRITICAL,
            f"phase {number} ({result.title}) failed: {result.detail}."
            + (
                ""
                if "already switched" in result.detail
                else f" Hosts already switched: {switched}."
            )
            + " Rolling back automatically.",
        )
        from .rollback import RollbackRun

        rollback = RollbackRun.from_deployment(
            self,
            reason=f"automatic: phase {number} ({result.title}) failed: {result.detail}",
            # a monitor rule that fired says which rule, its values and its window
            trigger=getattr(self, "monitor_trigger", None)
            or {"kind": "failure", "phase": result.name, "detail": result.detail},
        )
        rb = await rollback.execute()
        self.rollback_summary = rb.to_dict()
        first = [n for n in self.switched if not self.previous.get(n)]
        if first:
            # a first deployment has nothing to go back to: say so, never "rolled back"
            self.incident(
                Severity.CRITICAL,
                f"first deployment failed after the switch: release {self.release_id} stays"
                f" live on {', '.join(first)} (there is no earlier release to go back to)",
            )
            return "failed"
        if rb.outcome == "succeeded":
            for name in self.active:
                self.host_state.setdefault(name, {}).update(
                    state="rolled_back", release=rb.hosts.get(name, {}).get("release")
                )
            return "rolled_back"
        return "partial" if rb.outcome == "partial" else "failed"

    async def abandon_release(self) -> None:
        """A release that never went live: remove its unfinished folder and log it failed, so
        it is never a rollback candidate nor counted among the releases kept."""

        async def one(name: str) -> None:
            layout = self.layout(name)
            entry = self.log_entry("failed")
            keep = [self.previous.get(name) or ""]
            await self.sh(
                name,
                "abandon",
                f"{layout.remove_own_release(self.release_id, keep)}; {layout.log_release(entry)}",
            )

        # only hosts where this run created the release folder: a folder of the same name
        # made by another run (or the live release) is never ours to delete
        await self.on_hosts([h for h in self.created if h in self.hosts], one)

    def log_entry(self, state: str) -> dict[str, Any]:
        return {
            "release": self.release_id,
            "deployment_id": self.deployment_id,
            "revision": self.resolved_revision or self.revision,
            "state": state,
            "at": time.time(),
            "operator": str(self.engine.operator),
        }

    async def release_lock(self, unlocked: list[str] | None = None) -> None:
        """Give the lock back on every host this run locked (but ``unlocked``: given back
        by finalize's own script), then in Redis."""
        if self.dry_run:
            for name in self.active:
                await self.sh(
                    name, "unlock", self.layout(name).lock_release(self.lock_owner["token"])
                )
            return
        token = self.lock_owner["token"]
        if self.lease is not None:
            await self.lease.stop()

        async def one(name: str) -> None:
            await self.sh(name, "unlock", self.layout(name).lock_release(token), retry_safe=True)

        await self.on_hosts([n for n in self.lock_taken if n not in (unlocked or [])], one)
        self.lock_taken = []
        try:
            await asyncio.to_thread(redis_release, self.config, token)  # never block the loop
        except Exception as exc:  # Redis down: the host locks are the authority
            self.incident(Severity.WARNING, f"could not release the Redis lock: {exc}")
        self.emit(Kind.LOCK, action="released", holder=self.lock_owner | {"token": "…"})

    async def reconnect_for_resume(self) -> None:
        failures = await connect_all(list(self.hosts.values()))
        if failures:
            raise PhaseFailed(
                "cannot resume: " + "; ".join(str(e) for e in failures.values()), list(failures)
            )

        async def probe(name: str) -> None:
            result = await self.sh(name, "probe", self.layout(name).probe(), readonly=True)
            self.states[name] = parse_probe(result.stdout)

        await self.on_hosts(list(self.hosts), probe)

    # -- phase 1 -----------------------------------------------------------------------------

    async def phase_validate_pre(self) -> str:
        self.note(
            f"connect to {len(self.hosts)} host(s), verify host keys, read each host's release state"
        )
        failures = await connect_all(list(self.hosts.values()))
        if failures:
            for name, exc in failures.items():
                self.set_host_state(name, "unreachable", error=str(exc))
            raise PhaseFailed(
                "unreachable: " + "; ".join(str(e) for e in failures.values()), list(failures)
            )

        # a real run probes and takes the lock in one script per host (the first host
        # alone, then the others: see take_lock). The lock step first looks for this
        # release id on the host: there (another machine's run), it takes nothing and
        # refuse_existing_id refuses the id, as before, with no lock taken anywhere
        lock = not self.dry_run

        async def probe(name: str) -> None:
            layout = self.layout(name)
            steps = [Step("probe", layout.probe(), readonly=True, may_fail=True)]
            if lock:
                steps.append(Step("lock", self.lock_unless_clash(name), may_fail=True))
                # the host record in the same script, where the lock was taken: from the
                # lock on, a run killed before its next command is found on the hosts
                steps.append(Step("record", self.record_if_locked(name), quiet=True, may_fail=True))
            if name == self.resolver() and not self.resolved_revision:
                resolve = layout.resolve(self.config.portal.repository, self.revision)
                if lock:  # the mirror is updated under the lock only, never by a refused run
                    resolve = self.if_locked(name, f"( {resolve} )")
                steps.append(Step("resolve", resolve, readonly=True, may_fail=True))
            ran = await self.sh_script(name, steps)
            if lock and len(ran) > 1 and ran[1].stdout.strip() != "CLASH":
                self.early_locks[name] = ran[1]
                if parse_lock_output(ran[1].stdout)[0] == "LOCKED":
                    if len(ran) < 3 or not ran[2].ok:
                        why = ran[2].tail() if len(ran) > 2 else "the script stopped"
                        raise PhaseFailed(f"{name}: cannot record the deployment: {why}", [name])
                    self.recorded_early.append(name)
            took = name in self.early_locks and (
                parse_lock_output(self.early_locks[name].stdout)[0] == "LOCKED"
            )
            if steps[-1].name == "resolve" and len(ran) == len(steps) and (took or not lock):
                self.early_resolve = ran[-1]
            state = parse_probe(ran[0].stdout)
            self.states[name] = state
            self.previous[name] = state.current
            self.set_host_state(name, "ready", release=state.current)

        def give_back() -> None:  # what the scripts locked, released by on_failure
            for name, result in self.early_locks.items():
                if parse_lock_output(result.stdout)[0] == "LOCKED":
                    self.lock_taken.append(name)
            self.early_locks.clear()

        names = self.lock_order()
        errors = await self.on_hosts(names[:1], probe)
        early = self.early_locks.get(names[0])
        if early is not None and parse_lock_output(early.stdout)[0] != "LOCKED":
            await self.take_lock()  # the first host decides: refused, nothing else is asked
        if lock and early is None:
            lock = False  # the first host has this id (or failed): the others only probe
        if not any(errors.values()):
            errors |= await self.on_hosts(names[1:], probe)
        if any(errors.values()):
            give_back()
            raise PhaseFailed("; ".join(str(e) for e in errors.values() if e))
        try:
            self.refuse_existing_id()
        except PhaseFailed:
            give_back()
            raise
        if not self.dry_run:
            await self.take_lock()  # the locks taken with the probes; the rest now
        from .traffic import preflight

        configs = [self.host_config(n) for n in self.active]
        problems = await preflight(self.config, configs)
        if self.config.validation.version_key and self.config.portal.version_url:
            # the checks (and their HTTP client) load only where there is a key to look up
            from .adapters.checks import version_key_problems

            problems += await version_key_problems(self.config, configs)
        if problems:
            raise PhaseFailed("; ".join(problems))  # each names its source

        unfinished = [  # a deploy refused the lock in a race never held it: not unfinished
            d
            for d in self.engine.journal.unfinished(self.config.portal.name)
            if d["id"] != self.deployment_id and held_lock(self.engine.journal, d["id"])
        ]
        if self.dry_run:
            await self.take_lock()
        await self.resolve_revision()
        # the record went out with each lock (see probe); a lock taken on its own (none,
        # today, in a real run) gets it now: a run killed from here is found on the hosts
        late = [n for n in self.lock_taken if n not in self.recorded_early]
        if late:
            await self.write_host_records("running", names=late)
        if unfinished and not self.options.force:
            ids = ", ".join(d["id"] for d in unfinished)
            raise PhaseFailed(
                f"unfinished deployment(s) in the journal: {ids}. Resume or roll them back first"
                " (`portal-ops resume ID`, `portal-ops rollback ID`), or use --force."
            )

        if self.options.skip_validation:
            self.note("pre-deployment checks skipped (--skip-validation)")
            self.incident(Severity.WARNING, "pre-deployment validation skipped (--skip-validation)")
            return "skipped: --skip-validation (recorded)"
        from .adapters.checks import run_checks

        return await run_checks(self, "pre")

    def refuse_existing_id(self) -> None:
        """A release id already on any host (its folder, its log or a record) belongs to
        another run: refuse it before anything is created, so cleanup can never touch it."""
        if self.dry_run:
            return
        clash = [
            name
            for name, state in self.states.items()
            if self.release_id in state.releases
            or any(e.get("release") == self.release_id for e in state.log)
            or any(r.get("deployment_id") == self.deployment_id for r in state.records)
        ]
        if clash:
            raise PhaseFailed(
                f"release id {self.release_id} exists already on {', '.join(sorted(clash))}"
                " (another machine's deployment?); nothing was changed. Start a new deployment:"
                " `portal-ops deploy` picks a fresh id.",
                clash,
            )

    def lock_unless_clash(self, name: str) -> str:
        """The lock, unless this release id is on the host already (its folder, its record
        or its line in the release log): then ``CLASH``, and nothing is taken."""
        layout = self.layout(name)
        record = posixpath.join(record_dir(layout.meta), f"{self.deployment_id}.json")
        return (
            f"if [ -e {q(layout.release(self.release_id))} ] || [ -e {q(record)} ]"
            f" || grep -qF {q(self.release_id)} {q(layout.release_log)} 2>/dev/null;"
            f" then echo CLASH; else {layout.lock_acquire(self.lock_owner)}; fi"
        )

    def record_if_locked(self, name: str) -> str:
        """Phase 1's host record, written only where the lock step took this run's lock,
        with the previous release read on the host (the probe in the same script read it);
        the revision is the one asked for, resolved to its SHA in the next record."""
        layout = self.layout(name)
        record = write_record(
            layout.meta, self.host_record(name, "running"), previous_read=layout.read_current("p")
        )
        return self.if_locked(name, record)

    def if_locked(self, name: str, command: str) -> str:
        """``command`` only where this run holds the host's lock (taken earlier in the same
        script): a run refused the lock changes nothing on the host."""
        return self.layout(name).if_held(self.lock_owner["token"], command)

    def lock_order(self) -> list[str]:
        """The hosts in the order phase 1 takes their locks: the first one alone (it decides
        between racing deploys: every run of this config asks the same host first), then
        the rest at once. The first is not the resolver where there is another: its
        script also updates the mirror (a git fetch), which the others would wait for."""
        names = sorted(self.hosts)
        if len(names) > 1 and names[0] == self.resolver():
            names[0], names[1] = names[1], names[0]
        return names

    def resolver(self) -> str:
        """The host whose mirror resolves the revision: the primary, if in this run."""
        primary = self.config.primary_host().name
        return primary if primary in self.hosts else next(iter(self.hosts))

    async def resolve_revision(self) -> None:
        """Resolve the revision to one commit SHA, once, on the primary host's mirror: every
        host then deploys that commit even if the branch moves during phase 4."""
        if self.resolved_revision:
            return
        name = self.resolver()
        layout = self.layout(name)
        result = self.early_resolve or await self.sh(  # asked with the probe (phase 1)
            name,
            "resolve",
            layout.resolve(self.config.portal.repository, self.revision),
            readonly=True,
        )
        self.early_resolve = None
        if self.dry_run and not result.stdout:
            return
        if not result.ok:
            raise PhaseFailed(f"{name}: cannot resolve revision {self.revision}: {result.tail()}")
        for line in result.stdout.splitlines():
            if line.startswith("REVISION="):
                self.resolved_revision = line.split("=", 1)[1].strip()
        if not self.resolved_revision:
            raise PhaseFailed(f"{name}: revision {self.revision} did not resolve to a commit")
        self.note(f"revision {self.revision} is commit {self.resolved_revision}")

    async def take_lock(self) -> None:
        self.note(
            "take the deploy lock on every host"
            + (" and in Redis" if self.config.redis.url else "")
        )
        if self.dry_run:
            for name, state in self.states.items():
                if state.lock:
                    raise PhaseFailed(f"deploy lock is {LockHolder(name, state.lock).describe()}")
                await self.sh(name, "lock", self.layout(name).lock_acquire(self.lock_owner))
            return

        async def one(name: str) -> None:
            early = self.early_locks.pop(name, None)  # asked with the probe (phase 1)
            if early is not None:
                result = early
            else:
                layout = self.layout(name)
                result = await self.sh(name, "lock", layout.lock_acquire(self.lock_owner))
            status, owner = parse_lock_output(result.stdout)
            if status != "LOCKED":
                shown = {k: v for k, v in owner.items() if k != "token"}
                self.emit(Kind.LOCK, action="refused", holder=shown, host_name=name)
                holder = LockHolder(name, owner, self.config.lock.lease_seconds)
                raise PhaseFailed(f"deploy lock is {holder.describe()}", [name])
            self.lock_taken.append(name)

        # the first host decides between racing deploys (exactly one wins it), then every
        # other host at once; all or none: a refusal anywhere gives back what was taken
        names = self.lock_order()
        refused = [e for e in (await self.on_hosts(names[:1], one)).values() if e]
        if not refused:
            refused = [e for e in (await self.on_hosts(names[1:], one)).values() if e]
        if refused:
            await self.release_lock()
            raise PhaseFailed(f"{refused[0]}; see `portal-ops unlock`")
        try:
            held = await asyncio.to_thread(redis_acquire, self.config, self.lock_owner)
        except Exception as exc:
            self.incident(Severity.WARNING, f"Redis lock unavailable ({exc}); host locks hold")
            held = None
        if held is not None:
            await self.release_lock()
            holder = LockHolder("redis", held, self.config.lock.lease_seconds)
            raise PhaseFailed(f"deploy lock is {holder.describe()}")
        self.start_lease()
        self.emit(Kind.LOCK, action="acquired", holder=self.lock_owner | {"token": "…"})

    def start_lease(self, tokens: dict[str, str] | None = None) -> None:
        """Renew the lock while this run lives; lost, it stops the run (Run.sh fencing).
        ``tokens``: host -> the token held there, where not the run's own (a resume)."""
        token = self.lock_owner["token"]
        tokens = {n: (tokens or {}).get(n, token) for n in self.lock_taken}
        self.lease = Lease(self.config, self.hosts, tokens, self.lock_owner)
        self.lease.start()

    # -- phase 2 -----------------------------------------------------------------------------

    async def phase_backup(self) -> str:
        done: list[str] = []

        async def code_and_assets(name: str) -> None:
            current = self.previous.get(name)
            if not current:
                self.note("no live release yet: nothing to back up", name)
                return
            layout = self.layout(name)
            bdir = layout.backup_dir(self.deployment_id)
            # each archive built and verified on its own: any failure fails the phase
            portal = self.config.portal
            code = layout.backup_code(
                self.deployment_id, current, list(portal.backup_exclude), list(portal.asset_dirs)
            )
            steps = [Step("backup-code", code)]
            if name == primary and dump_command:  # the primary's dump in the same script
                steps.append(Step("backup-db", dump_command))
            ran = await self.sh_script(
                name,
                steps,
                # rewrites the same files: safe to repeat after a lost link
                retry_safe=not dump_command or name != primary,
            )
            result = ran[0]
            if len(ran) > 1:
                dumped.append(ran[1])
            if not result.ok:
                raise PhaseFailed(f"{name}: code backup failed: {result.tail()}", [name])
            self.backups.setdefault("hosts", {})[name] = {
                "dir": bdir,
                "sums": result.stdout.strip(),
            }
            done.append(name)

        primary = self.config.primary_host().name
        db_note = "no database dump command configured"
        dump_command = ""
        dumped: list[CommandResult] = []
        if primary in self.hosts and not self.previous.get(primary):
            db_note = f"no live release on {primary} yet: no database dump (first deployment)"
        elif primary in self.hosts and recipes.command(self.config, "db_dump"):
            layout = self.layout(primary)
            bdir = layout.backup_dir(self.deployment_id)
            file = f"{bdir}/db.dump"
            dump = self.cmd("db_dump", file=file)
            cwd = layout.current
            dump_command = (
                f"mkdir -p {q(bdir)} && {in_dir(cwd, dump or 'false', self.config.portal.env)}"
                f" && test -s {q(file)} && sha256sum {q(file)} > {q(file + '.sha256')}"
                f" && IFS= read -r l < {q(file + '.sha256')} && printf '%s\\n' \"$l\""
            )  # the sum, checked against the dump before a restore relies on it

        errors = await self.on_hosts(self.active, code_and_assets)
        failed = [n for n, e in errors.items() if e]
        if failed:
            raise PhaseFailed("; ".join(str(errors[n]) for n in failed), failed)

        if dump_command:
            # with the primary's code backup; on its own where that had nothing to back up
            result = dumped[0] if dumped else await self.sh(primary, "backup-db", dump_command)
            if not result.ok:
                raise PhaseFailed(
                    f"{primary}: database dump failed or empty: {result.tail()}", [primary]
                )
            last = (result.stdout.strip().splitlines() or [""])[-1]
            digest = (last.split() or [""])[0] if not self.dry_run else "(dry-run)"
            self.backups["database"] = {"host": primary, "file": file, "sha256": digest}
            db_note = f"database dump on {primary} ({digest[:12]})"
        return f"code backup on {len(done)} host(s); {db_note}"

    # -- phase 3 -----------------------------------------------------------------------------

    async def phase_flags_prepare(self) -> str:
        from .adapters.flags import prepare_flags

        return await prepare_flags(self)

    # -- phase 4 -----------------------------------------------------------------------------

    async def phase_code(self) -> str:
        portal = self.config.portal

        commit = self.resolved_revision or self.revision
        resolved = bool(self.resolved_revision) and not self.dry_run
        resuming = bool(self.resumed_from)

        async def prepare(name: str) -> None:
            layout = self.layout(name)
            state = self.states.get(name)
            if (
                resuming
                and state is not None
                and self.release_id in state.releases
                and self.release_id not in state.unfinished
            ):
                self.created.append(name)
                self.set_host_state(
                    name, "prepared", release=self.previous.get(name), next_release=self.release_id
                )
                return  # prepared before the interruption
            self.set_host_state(name, "preparing", release=self.previous.get(name))
            fetch = layout.fetch(
                portal.repository, commit, self.release_id, replace_unfinished=resuming
            )
            # link shared, install, build, mark finished: no decision here in between
            rest = [
                Step(
                    "link_shared",
                    layout.link_shared(self.release_id, portal.shared_dirs, portal.shared_files),
                )
            ]
            for step in ("install", "build"):
                command = self.cmd(
                    step,
                    release=self.release_dir(name),
                    deploy_path=layout.deploy_path,
                    shared=layout.shared,
                )
                if command:
                    rest.append(Step(step, in_dir(self.release_dir(name), command, portal.env)))
            rest.append(Step("finish", layout.mark_finished(self.release_id)))
            # the database host's migrate_status (read-only) goes last in its script: phase 5
            # then needs no channel of its own to measure what is pending before migrate
            status = name == self.database_host() and self.status_command(name)
            if status:
                rest.append(Step("migrate_status", status, readonly=True, may_fail=True))
            if resolved:
                # the commit is resolved (phase 1): the export is of that very commit, so
                # nothing is left to decide here between fetch and install: one script,
                # which stops at a failing fetch (its status still read here)
                steps = [Step("prepare", layout.prepare_dirs()), Step("fetch", fetch), *rest]

                def on_end(step: Step, status: int) -> None:
                    # the folder is this run's the moment fetch ends (unless it was there:
                    # 4), even if a later step is then cut off: the failure path removes it
                    if step is steps[1] and status != 4 and name not in self.created:
                        self.created.append(name)

                ran = await self.sh_script(name, steps, on_end=on_end)
                self.fetched(name, steps, ran)
            else:  # fetch, check what it exported, then the rest
                steps = [
                    Step("prepare", layout.prepare_dirs()),
                    Step("fetch", fetch, may_fail=True),
                ]
                self.fetched(name, steps, await self.sh_script(name, steps))
                steps = rest
                ran = await self.sh_script(name, steps)
            if status and len(ran) == len(steps):
                self.early_status = (name, ran[-1])
            failed = first_failure(steps, ran)
            if failed is not None:
                raise PhaseFailed(
                    f"{name}: {steps[failed].name} exited {ran[failed].exit_status}:"
                    f" {ran[failed].tail()}",
                    [name],
                )
            self.set_host_state(
                name, "prepared", release=self.previous.get(name), next_release=self.release_id
            )

        errors = await self.on_hosts(self.active, prepare)
        self.handle_host_failures(errors, "code deployment")
        return f"release {self.release_id} prepared on {len(self.active)} host(s)"

    def fetched(self, name: str, steps: list[Step], ran: list[CommandResult]) -> None:
        """What phase 4's fetch did on ``name`` (``steps`` begin with prepare, fetch): the
        release folder is this run's unless it was there already (exit 4); a failing
        prepare or fetch fails the host; the commit exported is the one resolved."""
        if len(ran) < 2:
            raise PhaseFailed(
                f"{name}: prepare exited {ran[0].exit_status}: {ran[0].tail()}", [name]
            )
        result = ran[1]
        if result.exit_status != 4 and name not in self.created:  # 4: there already, not ours
            self.created.append(name)
        if not result.ok:
            raise PhaseFailed(f"{name}: fetch exited {result.exit_status}: {result.tail()}", [name])
        for line in result.stdout.splitlines():
            if line.startswith("REVISION="):
                got = line.split("=", 1)[1]
                if self.resolved_revision and got != self.resolved_revision:
                    raise PhaseFailed(f"{name}: exported {got}, not {self.resolved_revision}")
                self.resolved_revision = got

    def handle_host_failures(self, errors: dict[str, BaseException | None], what: str) -> None:
        """Drop failed hosts while within max_fail_percentage; otherwise fail the phase."""
        failed = {n: str(e) for n, e in errors.items() if e}
        if not failed:
            return
        for name, why in failed.items():
            self.failed_hosts[name] = why
            self.set_host_state(name, "failed", release=self.previous.get(name), error=why)
        total = len(self.fleet)
        percent = 100.0 * len(self.failed_hosts) / total
        if percent > self.config.rollout.max_fail_percentage or len(failed) == len(self.active):
            raise PhaseFailed(
                f"{what} failed on {len(failed)} host(s): " + "; ".join(failed.values()),
                list(failed),
            )
        self.active = [n for n in self.active if n not in failed]
        self.incident(
            Severity.WARNING,
            f"{what} failed on {', '.join(failed)}; continuing without them"
            f" ({percent:.0f}% failed, max_fail_percentage {self.config.rollout.max_fail_percentage:g})",
        )

    # -- phase 5 -----------------------------------------------------------------------------

    def database_host(self) -> str:
        """The host phase 5 migrates on: the primary, or the first host still active."""
        primary = self.config.primary_host().name
        return primary if primary in self.active else self.active[0]

    def status_command(self, name: str) -> str | None:
        """Phase 5's first migrate_status, when it can be asked in phase 4's install
        script: a real run (a dry-run has no release to ask in) that is not a resume (a
        resume first stops the interrupted migrate, then measures)."""
        if self.dry_run or self.resumed_from or not self.cmd("migrate"):
            return None
        status_cmd = self.cmd("migrate_status")
        if not status_cmd:
            return None
        return in_dir(self.release_dir(name), status_cmd, self.config.portal.env)

    async def phase_database(self) -> str:
        primary = self.database_host()
        migrate = self.cmd("migrate")
        if not migrate:
            self.note("no migrate command configured", primary)
            return "skipped: no migrate command configured"
        rel = self.release_dir(primary)
        env = self.config.portal.env
        status_cmd = self.cmd("migrate_status")
        if self.resumed_from:
            await self.confirm_dead(primary)  # the interrupted migrate must not still run
        if status_cmd:
            early, self.early_status = self.early_status, None
            if early is not None and early[0] == primary:
                result = early[1]  # asked at the end of the primary's install script
            else:
                result = await self.sh(
                    primary,
                    "migrate_status",
                    in_dir(rel, status_cmd, env),
                    readonly=not self.dry_run,
                )
            pending_now = recipes.parse_pending(result.stdout) if result.ok else None
            if self.baseline is None or self.baseline.get("pending") is None:
                # the baseline, recorded on the hosts before migrate runs: whatever happens
                # next (a kill, a timeout), rollback and resume measure against it
                self.baseline = {"pending": pending_now, "output": result.tail(3)}
            self.pending_before = self.baseline.get("pending")
            if pending_now == 0 and not self.dry_run:
                if self.pending_before:
                    self.migrations_applied = self.pending_before
                    return f"{self.migrations_applied} migration(s) applied (before the resume)"
                return "skipped: no pending migrations"
        else:
            self.baseline = self.baseline or {"pending": None, "output": ""}
        # the baseline on the hosts before migrate: held, it goes out as the first step of
        # the primary's next script (a failed write stops it before migrate)
        await self.write_host_records("running", hold=True)
        maintenance = self.config.portal.maintenance_during_migrations and self.cmd(
            "maintenance_on"
        )
        # the first deployment has no `current` yet: maintenance runs in the new release
        live = self.layout(primary).current if self.previous.get(primary) else rel
        if maintenance:
            await self.step_ok(
                primary, "maintenance_on", in_dir(live, self.cmd("maintenance_on") or "true", env)
            )
        try:
            # migrate, then (whatever its status) the count against the baseline: one script
            measure = bool(status_cmd and self.pending_before is not None and not self.dry_run)
            steps = [Step("migrate", in_dir(rel, migrate, env), may_fail=True)]
            if measure:
                status_now = in_dir(rel, status_cmd or "true", env)
                steps.append(Step("migrate_status", status_now, readonly=True, may_fail=True))
            ran = await self.sh_script(primary, steps)
            result = ran[0]
            applied = recipes.parse_applied(result.stdout)
            if measure and len(ran) > 1:
                after = ran[1]
                pending_after = recipes.parse_pending(after.stdout)
                if pending_after is not None and self.pending_before is not None:  # exact
                    applied = max(0, self.pending_before - pending_after)
            self.migrations_applied = applied or 0
            self.emit(
                Kind.STEP_OUTPUT,
                host=primary,
                step="migrate",
                stream="portal-ops",
                line=f"migrations applied by this deployment: {self.migrations_applied}",
                migrations_applied=self.migrations_applied,
            )
            if not result.ok:
                raise PhaseFailed(
                    f"{primary}: migrations failed after applying {self.migrations_applied}: {result.tail()}",
                    [primary],
                )
        finally:
            if maintenance:
                await self.sh(
                    primary,
                    "maintenance_off",
                    in_dir(live, self.cmd("maintenance_off") or "true", env),
                )
        return f"{self.migrations_applied} migration(s) applied on {primary}"

    # -- phase 6 -----------------------------------------------------------------------------

    async def phase_switch(self) -> str:
        from .adapters.monitor import record_baseline

        baseline = await record_baseline(self)
        if baseline:
            self.emit(
                Kind.STEP_OUTPUT, host=None, step="baseline", stream="portal-ops", line=baseline
            )
        self.switch_started = time.time()
        hosts = [self.host_config(n) for n in self.active]
        groups = batches(hosts, self.config.rollout.batches)
        await switch_batches(self, [[h.name for h in group] for group in groups])
        return f"{len(self.switched)} host(s) live on {self.release_id} in {len(groups)} batch(es)"

    async def switch_host(self, name: str) -> None:
        await self.cut_over(
            name,
            self.release_id,
            before=self.previous.get(name),
            strict=True,
            on_switched=self.switched.append,
        )

    # -- phase 7 -----------------------------------------------------------------------------

    async def phase_validate_post(self) -> str:
        from .adapters.checks import run_checks

        return await run_checks(self, "post")

    # -- phase 8 -----------------------------------------------------------------------------

    async def phase_rollout(self) -> str:
        from .adapters.flags import gradual_rollout

        return await gradual_rollout(self)

    # -- phase 9 -----------------------------------------------------------------------------

    async def phase_finalize(self) -> str:
        entry = self.log_entry("deployed")
        pruned: dict[str, list[str]] = {}
        # with no monitoring window nothing is decided here between the release log and the
        # unlock: the outcome record and the unlock ride the release log's script (one
        # channel per host); the lease stops first, as before any unlock
        together = (
            not self.dry_run
            and self.config.monitor.bake_seconds <= 0
            and all(n in self.states for n in self.active)
        )
        unlocked: list[str] = []
        if together:
            self.outcome_recorded = "partial" if self.failed_hosts else "succeeded"
            await self.write_host_records(self.outcome_recorded, hold=True, may_fail=True)
            if self.lease is not None:
                await self.lease.stop()

        async def finalize(name: str) -> None:
            layout = self.layout(name)
            previous = self.previous.get(name)
            protect = {self.release_id} | ({previous} if previous else set())
            known = self.states.get(name)
            if known is not None and not self.dry_run:
                # the releases were read in phase 1 under this run's lock, and only this
                # release was added since: what to prune is known here, so the release log
                # and the prune go as one script (fenced: it changes the host)
                state = replace(
                    known,
                    current=self.release_id,
                    releases=sorted({*known.releases, self.release_id}),
                    unfinished=[r for r in known.unfinished if r != self.release_id],
                    log=[*known.log, entry],
                )
                doomed = prune_candidates(state, self.config.portal.keep_releases, protect)
                steps = [Step("release_log", layout.log_release(entry), may_fail=True)]
                if doomed:
                    steps.append(Step("prune", layout.prune(state, doomed), may_fail=True))
                unlock = together and name in self.lock_taken
                if unlock:  # the token the fence checks: a resume's may be an earlier run's
                    held = self.lease.tokens if self.lease is not None else {}
                    token = held.get(name, self.lock_owner["token"])
                    steps.append(Step("unlock", layout.lock_release(token), may_fail=True))
                ran = await self.sh_script(name, steps, retry_safe=True, unlock_fenced=unlock)
                if unlock and len(ran) == len(steps):
                    unlocked.append(name)
                pruned[name] = doomed
                return
            # one script: the release log, then the probe that decides what to prune
            _, result = await self.sh_script(
                name,
                [
                    Step("release_log", layout.log_release(entry), may_fail=True),
                    Step("probe", layout.probe(), readonly=True),
                ],
                retry_safe=True,
            )
            state = parse_probe(result.stdout)
            if self.dry_run:
                state.current = self.release_id
            doomed = prune_candidates(state, self.config.portal.keep_releases, protect)
            if doomed:
                # a release's backups go with it (backups are named by deployment id,
                # which is the release id)
                await self.sh(name, "prune", layout.prune(state, doomed))
            pruned[name] = doomed

        errors = await self.on_hosts(self.active, finalize)
        problems = [str(e) for e in errors.values() if e]
        if problems:
            self.incident(Severity.WARNING, "finalization problems: " + "; ".join(problems))
        from .adapters.monitor import monitoring_window

        monitor_note = await monitoring_window(self)
        if not self.dry_run and not together:
            # the outcome record goes out with the unlock, one script per host (a failed
            # write never keeps the lock); whatever the unlock did not carry goes now
            self.outcome_recorded = "partial" if self.failed_hosts else "succeeded"
            await self.write_host_records(self.outcome_recorded, hold=True, may_fail=True)
        await self.release_lock(unlocked)  # the hosts not unlocked in their script
        await self.flush()
        report = self.write_report()
        removed = sum(len(v) for v in pruned.values())
        return f"pruned {removed} old release(s); {monitor_note}; report {report}"

    def write_report(self) -> str:
        if self.dry_run:
            return "(not written in a dry-run)"
        path = self.report_path(f"{self.deployment_id}.json")
        body = {
            "deployment_id": self.deployment_id,
            "target": self.config.portal.name,
            "release": self.release_id,
            "revision": self.resolved_revision or self.revision,
            "operator": self.engine.operator.to_dict(),
            "phases": [p.to_dict() for p in self.phase_results],
            "hosts": self.host_state,
            "migrations_applied": self.migrations_applied,
            "backups": self.backups,
        }
        path.write_text(redact(json.dumps(body, indent=2, default=str)))
        return str(path)
