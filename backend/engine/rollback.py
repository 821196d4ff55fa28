"""Emergency rollback: the ten phases of DESIGN.md, manual or automatic, idempotent.

1 declare the incident and take the lock, 2 disable the release's flags, 3 maintenance on
(only when the database must go back), 4 switch ``current`` back on every host, 5 database
back (recorded migrations rolled back, or the verified dump restored), 6 assets and caches,
7 restart services, 8 maintenance off, 9 verify health, 10 report, notify, release the lock.

Rolling back twice, or rolling back a half-rolled-back deployment, converges: every phase
looks at what is on the hosts now and only changes what still differs from the target.
A host that stays unreachable is reported; the others are still rolled back ("partial").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import recipes
from ..events import Event, Kind, Severity
from ..hostpaths import UNFINISHED_MARKER
from ..inputs import TEXT_LIMIT, printable
from ..journal import process_alive
from ..phases import ROLLBACK_PHASES
from ..redact import redact
from ..shell import fill, in_dir, q
from ..transport import CommandResult, Host, TransportError, connect_all
from ..transport.remote_group import kill_tagged, parse_left
from .hoststate import DeploymentView, merge, merge_backups, newer_than, newest, write_record
from .layout import HostState, parse_probe
from .lock import Lease, LockHolder, new_owner, parse_lock_output, redis_claim, redis_release
from .run import PhaseFailed, PhaseResult, Plan, PlannedCommand, Run
from .script import Step
from .traffic import health_url, lb_action, wait_healthy

if TYPE_CHECKING:
    from .deploy import Deployment
    from .front import Engine


# post-deployment checks re-run by rb-verify (health per host and public, errors); ``current``
# on every host (Q01's question) is rb-verify's own read of each host, not asked twice
VERIFY_CHECKS = ("Q02", "Q03", "Q06")


class RollbackError(Exception):
    """A rollback that cannot start (unknown deployment, nothing to roll back to...)."""


@dataclass
class RollbackResult:
    deployment_id: str
    outcome: str  # succeeded | partial | failed
    phases: list[PhaseResult]
    hosts: dict[str, dict[str, Any]]
    database: str
    seconds: float
    reason: str
    trigger: dict[str, Any]
    unreachable: list[str] = field(default_factory=list)
    dry_run: bool = False
    plan: Plan | None = None
    # from the alarm (the monitor rule firing, else the rollback's start) until every host
    # that had to go back serves the previous release again (switched, reloaded, healthy)
    alarm_to_serving_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment_id": self.deployment_id,
            "outcome": self.outcome,
            "alarm_to_serving_seconds": self.alarm_to_serving_seconds,
            "reason": self.reason,
            "trigger": self.trigger,
            "seconds": round(self.seconds, 3),
            "total_seconds": round(self.seconds, 3),
            "database": self.database,
            "unreachable": self.unreachable,
            "phases": [p.to_dict() for p in self.phases],
            "hosts": self.hosts,
            "dry_run": self.dry_run,
        }


def last_checkpoint(events: list[Event]) -> dict[str, Any]:
    checkpoint: dict[str, Any] = {}
    for event in events:
        if event.kind == Kind.HOST_STATE and event.data.get("state") == "checkpoint":
            checkpoint = event.data.get("checkpoint", {})
    return checkpoint


class RollbackRun(Run):
    kind = "rollback"

    def __init__(
        self,
        engine: Engine,
        deployment_id: str,
        hosts: dict[str, Host],
        checkpoint: dict[str, Any],
        *,
        reason: str,
        trigger: dict[str, Any],
        dry_run: bool = False,
        owns_lock_token: str | None = None,
        connected: bool = False,
        restore_dump: bool = False,
        surveyed: dict[str, HostState] | None = None,
        survey_locks: dict[str, tuple[str, dict[str, Any]]] | None = None,
        survey_owner: dict[str, Any] | None = None,
    ) -> None:
        plan = Plan(
            deployment_id,
            checkpoint.get("release", ""),
            checkpoint.get("revision", ""),
            ROLLBACK_PHASES,
        )
        super().__init__(
            engine.config, engine.bus, deployment_id, hosts, dry_run=dry_run, plan=plan
        )
        self.engine = engine
        self.checkpoint = checkpoint
        self.reason = printable(reason, TEXT_LIMIT)  # stored and shown: one safe line
        self.trigger = trigger
        self.release = checkpoint.get("release", "")
        self.previous: dict[str, str | None] = dict(checkpoint.get("previous") or {})
        self.targets: dict[str, str | None] = {}
        self.current: dict[str, str | None] = {}
        self.unreachable: list[str] = []
        self.database_action = "none"
        self.database_must_go_back = False
        self.lock_token = owns_lock_token or ""
        # the survey's owner where it took the locks (one token for hosts, Redis, lease),
        # naming the deployment now that it is picked
        self.lock_owner = (
            {k: v for k, v in survey_owner.items() if k != "picking"}
            | {"deployment_id": deployment_id}
            if survey_owner is not None
            else new_owner(deployment_id, engine.operator, os.getpid())
        )
        self.connected = connected
        self.started = time.time()
        self.serving_at: dict[str, float] = {}  # host -> when it served the target again
        self.maintenance_on = False
        self.host_tokens: dict[str, str] = {}  # hosts whose lock we adopted with its own token
        self.redis_owner: dict[str, Any] | None = None  # the Redis lock's owner, once taken
        self.restore_dump_asked = restore_dump
        self.records: dict[str, dict[str, Any]] = {}  # each host's record of the deployment
        self.failed_phases: list[str] = []
        # what the survey that picked the deployment read on each host a moment before,
        # over the same connections: the declare phase's probe, not asked twice
        self.surveyed: dict[str, HostState] = dict(surveyed or {})
        # each host's answer to the lock taken in the survey's script, and its owner (whose
        # deployment id was not known yet when no id was given)
        self.survey_locks = dict(survey_locks or {})
        self.survey_owner = survey_owner
        # each host's answer to a lock taken in the declare phase's own script: status,
        # holder, the token it was taken with, whether its owner must be renamed
        self.lock_answers: dict[str, tuple[str, dict[str, Any], str, bool]] = {}
        # the primary's leftover commands stopped and its pending migrations counted in its
        # switch script (under the lock, after the switch): the database phase's inputs,
        # read without a round trip of their own; None where not measured there
        self.measured: dict[str, Any] | None = None
        # each switched host's ``current`` (and unfinished marker), read at the end of its
        # switch script: rb-verify's read, not asked again
        self.verified: dict[str, str] = {}

    @classmethod
    def from_deployment(
        cls, deployment: Deployment, *, reason: str, trigger: dict[str, Any]
    ) -> RollbackRun:
        """An automatic rollback inside a failing deployment: same connections, same lock."""
        run = cls(
            deployment.engine,
            deployment.deployment_id,
            deployment.hosts,
            deployment.checkpoint(),
            reason=reason,
            trigger=trigger,
            owns_lock_token=deployment.lock_owner["token"],
            connected=True,
        )
        deployment.lock_taken = []  # the rollback releases it
        run.lease = deployment.lease  # and is fenced by the same lease
        return run

    # -- helpers ---------------------------------------------------------------------------

    def reachable(self) -> list[str]:
        return [h for h in self.hosts if h not in self.unreachable]

    def lost(self, name: str, exc: BaseException) -> None:
        if name not in self.unreachable:
            self.unreachable.append(name)
            self.set_host_state(name, "unreachable", error=str(exc))
            self.incident(Severity.CRITICAL, f"{name} unreachable during rollback: {exc}")

    async def each(
        self, work: Any, names: list[str] | None = None
    ) -> dict[str, BaseException | None]:
        errors = await self.on_hosts(names if names is not None else self.reachable(), work)
        for name, exc in errors.items():
            if isinstance(exc, TransportError):
                self.lost(name, exc)
        return errors

    # -- the run ---------------------------------------------------------------------------

    async def execute(self) -> RollbackResult:
        self.emit(
            Kind.ROLLBACK_STARTED,
            reason=self.reason,
            trigger=self.trigger,
            release=self.release,
            previous=self.previous,
            operator=self.engine.operator.to_dict(),
            dry_run=self.dry_run,
        )
        bodies = [
            self.phase_declare,
            self.phase_flags,
            self.phase_maintenance_on,
            self.phase_switch,
            self.phase_database,
            self.phase_assets,
            self.phase_restart,
            self.phase_maintenance_off,
            self.phase_verify,
            self.phase_report,
        ]
        failed: list[PhaseResult] = []
        for number, ((name, title), body) in enumerate(
            zip(ROLLBACK_PHASES, bodies, strict=True), 1
        ):
            ran = await self.timed_phase(number, name, title, body)
            if ran.status == "failed":
                failed.append(ran)
                self.failed_phases.append(f"{number} ({title}): {ran.detail}")
                if name == "rb-declare":
                    break
        if failed and failed[0].name == "rb-declare":
            outcome = "failed"
        elif failed or self.unreachable:
            outcome = "partial"
        else:
            outcome = "succeeded"
        hosts = {
            name: {
                "release": self.current.get(name),
                "target": self.targets.get(name),
                "state": "unreachable"
                if name in self.unreachable
                else self.host_state.get(name, {}).get("state", "?"),
            }
            for name in self.hosts
        }
        result = RollbackResult(
            deployment_id=self.deployment_id,
            outcome=outcome,
            phases=self.phase_results,
            hosts=hosts,
            database=self.database_action,
            seconds=time.time() - self.started,
            reason=self.reason,
            trigger=self.trigger,
            unreachable=list(self.unreachable),
            dry_run=self.dry_run,
            plan=self.plan if self.dry_run else None,
            alarm_to_serving_seconds=self.alarm_to_serving(),
        )
        self.phase = ""
        self.emit(
            Kind.ROLLBACK_FINISHED,
            outcome=outcome,
            seconds=round(result.seconds, 3),
            summary=result.to_dict(),
        )
        if not self.dry_run:
            row = self.engine.journal.get_deployment(self.deployment_id)
            if row is not None:
                summary = dict(row.get("summary") or {})
                summary["rollback"] = result.to_dict()
                final = (
                    "rolled_back"
                    if outcome == "succeeded"
                    else ("partial" if outcome == "partial" else row.get("outcome") or "failed")
                )
                self.engine.journal.finish_deployment(self.deployment_id, final, summary)
        return result

    # -- 1 -----------------------------------------------------------------------------------

    async def phase_declare(self) -> str:
        self.incident(
            Severity.CRITICAL,
            f"rollback of {self.deployment_id}: {self.reason}",
            trigger=self.trigger,
        )
        if not self.connected:
            failures = await connect_all(list(self.hosts.values()))
            for name, exc in failures.items():
                self.lost(name, exc)
            if len(self.unreachable) == len(self.hosts):
                raise PhaseFailed(
                    "no host reachable: " + "; ".join(str(e) for e in failures.values())
                )

        async def probe(name: str) -> None:
            known = self.surveyed.pop(name, None)
            if known is not None:  # still in the plan: it ran, just before this phase
                command = self.layout(name).probe()
                self.plan.commands.append(PlannedCommand(self.phase, name, "probe", command, True))
                state = known
            elif self.lease is not None and not self.dry_run:
                # inside the deployment's own run (its lock, its token): read the host and
                # take (adopt) its lock in one script, not two channels
                layout = self.layout(name)
                owner = self.lock_owner | {"token": self.lock_token or self.lock_owner["token"]}
                steps = [
                    Step("probe", layout.probe(), readonly=True, may_fail=True),
                    Step("lock", layout.lock_acquire(owner), may_fail=True),
                ]
                ran = await self.sh_script(name, steps, retry_safe=True)
                if len(ran) > 1:
                    status, holder = parse_lock_output(ran[1].stdout)
                    if status == "HELD" and holder.get("token") == owner["token"]:
                        status = "LOCKED"  # ours: a retry found what the cut-off one took
                    self.lock_answers[name] = (status, holder, owner["token"], False)
                state = parse_probe(ran[0].stdout if ran else "")
            else:
                result = await self.sh(name, "probe", self.layout(name).probe(), readonly=True)
                state = parse_probe(result.stdout)
            self.current[name] = state.current
            self.adopt_host_record(name, state)
            target = self.previous.get(name)
            if target is None and name not in self.previous:
                # not in the checkpoint (crash before phase 1 ended): the live release stays
                target = (
                    state.current
                    if state.current != self.release
                    else state.previous_good(self.release)
                )
            if target and target not in state.releases:
                raise PhaseFailed(f"{name}: previous release {target} is gone from the host")
            self.targets[name] = target
            self.set_host_state(name, "rolling_back", release=state.current, target=target)

        errors = await self.each(probe)
        problems = [str(e) for e in errors.values() if isinstance(e, PhaseFailed)]
        if problems:  # a lock taken in the same script goes back: nothing changed
            taken = {n: a[2] for n, a in self.lock_answers.items() if a[0] == "LOCKED"}
            await self.give_back_taken(taken)
            raise PhaseFailed("; ".join(problems))
        await self.take_lock()
        self.database_must_go_back = (self.checkpoint.get("migrations_applied") or 0) > 0 or bool(
            self.checkpoint.get("pending_before")
        )
        # held: written as the first step of each host's next script (its switch), or
        # before a load balancer's drain or a flag change (Run.flush)
        await self.write_host_records("rolling_back", hold=True)
        moves = {n: f"{self.current.get(n)} -> {self.targets.get(n)}" for n in self.reachable()}
        return "targets: " + ", ".join(f"{n} {m}" for n, m in moves.items())

    def adopt_host_record(self, name: str, state: HostState) -> None:
        """What this host recorded of the deployment fills what the journal lacks (another
        machine's deployment, or a crash between two journal checkpoints): this host's
        previous release, the migration baseline, the lock token."""
        record = next(
            (r for r in state.records if r.get("deployment_id") == self.deployment_id), None
        )
        if record is None:
            return
        self.records[name] = record
        if name not in self.previous and "previous" in record:
            self.previous[name] = record.get("previous")
        baseline = record.get("baseline") or {}
        if baseline.get("pending") is not None and self.checkpoint.get("pending_before") is None:
            self.checkpoint["pending_before"] = baseline["pending"]
        applied = record.get("migrations_applied")
        if applied is not None and not self.checkpoint.get("migrations_applied"):
            self.checkpoint["migrations_applied"] = applied
        elif (
            applied is None
            and int(record.get("number") or 0) == 5
            and baseline
            and not self.checkpoint.get("baseline")
        ):
            # stopped inside phase 5, after the baseline: the journal's count is not final
            self.checkpoint["migrations_applied"] = None
            self.checkpoint["baseline"] = baseline
        if record.get("backups"):  # each host's record holds its own code backup
            self.checkpoint["backups"] = merge_backups(
                self.checkpoint.get("backups"), record["backups"]
            )
        if record.get("lock_token") and not self.lock_token:
            self.lock_token = str(record["lock_token"])
        self.release = self.release or str(record.get("release") or "")

    async def write_host_records(
        self, status: str, names: list[str] | None = None, *, hold: bool = False
    ) -> None:
        """Say on the hosts that the deployment is being (or has been) rolled back, before
        the switch and the database change: a rollback killed midway is found and redone.
        ``hold``: the record goes out as the first step of the host's next script (its
        switch, its database step), which stops there if the record cannot be written."""
        if self.dry_run or not self.release:
            return
        if hold:
            for name in names if names is not None else self.reachable():
                self.hold(name, self.record_step(name, status))
            return

        async def one(name: str) -> None:
            step = self.record_step(name, status)
            await self.sh(name, step.name, step.command, retry_safe=True)

        await self.each(one, names)

    def record_step(self, name: str, status: str) -> Step:
        """The step that writes this rollback's record on ``name``."""
        base = self.records.get(name) or {
            "deployment_id": self.deployment_id,
            "kind": "deploy",
            "release": self.release,
            "previous": self.previous.get(name),
            "revision": self.checkpoint.get("revision", ""),
            "started_at": self.started,
        }
        record = {
            **base,
            "status": status,
            "rollback_phase": self.phase,
            "rollback_operator": str(self.engine.operator),
            "updated_at": time.time(),
        }
        self.records[name] = record
        # never stops what follows: a rollback gets back even where it cannot write
        return Step("record", write_record(self.layout(name).meta, record), may_fail=True)

    async def take_lock(self) -> None:
        """Adopt the deployment's own lock (a crashed or failing run of the same deployment);
        take it where absent; refuse when another deployment holds it."""
        if self.dry_run:
            return
        self.lock_token = self.lock_token or self.lock_owner["token"]
        owner = self.lock_owner | {"token": self.lock_token}

        taken_here: dict[str, str] = {}  # hosts whose lock this run took: token

        async def one(name: str) -> None:
            layout = self.layout(name)
            answer = self.lock_answers.pop(name, None)  # from the declare phase's script
            surveyed = self.survey_locks.pop(name, None)
            if answer is None and surveyed is not None and self.survey_owner is not None:
                # taken (or found held) by the survey's script a moment ago
                self.plan.commands.append(
                    PlannedCommand(self.phase, name, "lock", layout.lock_acquire(self.lock_owner))
                )
                picking = bool(self.survey_owner.get("picking"))
                answer = (*surveyed, self.lock_owner["token"], picking)
            if answer is not None:
                status, holder, token, rename = answer
                if status == "LOCKED":
                    self.host_tokens[name] = taken_here[name] = token
                    if rename:  # its owner now names the deployment, in the host's next script
                        self.hold(name, self.owner_step(name, self.lock_owner))
                    return
            else:
                result = await self.sh(name, "lock", layout.lock_acquire(owner), retry_safe=True)
                status, holder = parse_lock_output(result.stdout)
                if status == "LOCKED":
                    taken_here[name] = self.lock_token
                    return
            if holder.get("deployment_id") == self.deployment_id:  # ours: adopt it
                self.host_tokens[name] = holder.get("token", self.lock_token)
                return
            lease = self.config.lock.lease_seconds
            if (
                holder.get("picking")
                and LockHolder(name, holder, lease).stale
                and holder.get("token")
            ):
                # a rollback killed before it named its deployment here: it changed nothing
                # on this host (its first script renames the lock first); adopted, renamed
                self.host_tokens[name] = str(holder["token"])
                self.hold(name, self.owner_step(name, self.lock_owner | {"token": holder["token"]}))
                return
            raise PhaseFailed(
                f"deploy lock is {LockHolder(name, holder, lease).describe()}; see `portal-ops unlock`"
            )

        errors = await self.each(one)
        refused = [str(e) for e in errors.values() if isinstance(e, PhaseFailed)]
        if refused:  # nothing changed: the locks this run took go back, nothing is held
            await self.give_back_taken(taken_here)
            raise PhaseFailed("; ".join(refused))
        if self.lease is None:  # not inside the deployment's own run: its lease is ours then
            await self.take_redis_lock(owner)
            tokens = {n: self.host_tokens.get(n, self.lock_token) for n in self.reachable()}
            self.lease = Lease(self.config, self.hosts, tokens, self.redis_owner)
            self.lease.start()
        self.emit(
            Kind.LOCK,
            action="acquired",
            holder={"deployment_id": self.deployment_id, "rollback": True},
        )

    async def give_back_taken(self, taken: dict[str, str]) -> None:
        """Release the locks this run took (host: token) and drop what it held for them: a
        rollback refused in its declare phase leaves the hosts as it found them."""

        async def give(name: str) -> None:
            self.prelude.pop(name, None)
            await self.sh(name, "unlock", self.layout(name).lock_release(taken[name]))

        await self.each(give, [n for n in taken if n in self.reachable()])

    def owner_step(self, name: str, owner: dict[str, Any]) -> Step:
        """Rewrite the lock's owner record (same token), only while the lock is ours."""
        command = self.layout(name).lock_owner_rewrite(owner)
        return Step("lock_owner", command, quiet=True, may_fail=True)

    async def take_redis_lock(self, owner: dict[str, Any]) -> None:
        """The Redis lock too, like the hosts': adopted where this deployment still holds it,
        taken where it was given back (a finished deployment) or expired (a crashed one)."""
        self.redis_owner = owner
        if not self.config.redis.url:
            return
        try:
            token, held = await asyncio.to_thread(redis_claim, self.config, owner)
        except Exception as exc:  # Redis down: the host locks are the authority
            self.incident(Severity.WARNING, f"Redis lock unavailable ({exc}); host locks hold")
            return
        if held is not None:
            holder = LockHolder("redis", held, self.config.lock.lease_seconds)
            raise PhaseFailed(f"deploy lock is {holder.describe()}; see `portal-ops unlock`")
        self.redis_owner = owner | {"token": token}

    # -- 2 -----------------------------------------------------------------------------------

    async def phase_flags(self) -> str:
        from .adapters.flags import rollback_flags

        if self.config.flags.release_flags:
            await self.flush()  # the hosts' records before the flags change

        return await rollback_flags(self)

    # -- 3 / 8 -------------------------------------------------------------------------------

    def primary(self) -> str | None:
        name = self.config.primary_host().name
        if name in self.reachable():
            return name
        return self.reachable()[0] if self.reachable() else None

    async def phase_maintenance_on(self) -> str:
        primary = self.primary()
        command = self.cmd("maintenance_on")
        if not (
            self.database_must_go_back
            and command
            and self.config.portal.maintenance_during_migrations
            and primary
        ):
            return "skipped: the database does not go back, or no maintenance command"
        await self.sh(
            primary,
            "maintenance_on",
            in_dir(self.layout(primary).current, command, self.config.portal.env),
        )
        self.maintenance_on = True
        return f"maintenance on ({primary})"

    async def phase_maintenance_off(self) -> str:
        primary = self.primary()
        command = self.cmd("maintenance_off")
        if not (self.maintenance_on and command and primary):
            return "skipped: maintenance was not turned on"
        result = await self.sh(
            primary,
            "maintenance_off",
            in_dir(self.layout(primary).current, command, self.config.portal.env),
            retry_safe=True,
        )
        if not result.ok:
            raise PhaseFailed(f"maintenance off failed on {primary}: {result.tail()}")
        return f"maintenance off ({primary})"

    # -- 4 -----------------------------------------------------------------------------------

    async def phase_switch(self) -> str:
        need = [
            n
            for n in self.reachable()
            if self.targets.get(n) and self.current.get(n) != self.targets.get(n)
        ]
        settled = [n for n in self.reachable() if n not in need]
        problems: list[str] = []
        for group in self.switch_groups(need, settled):
            # a host that fails does not stop the others: every host that can go back does
            errors = await self.each(self.switch_back, group)
            problems += [str(e) for n, e in errors.items() if e is not None]

        # a host left drained by the failed deployment goes back into the load balancer,
        # but only when it serves a release that is healthy (each host on its own, at once)
        async def reenable(name: str) -> None:
            if await self.serves_healthy(name):
                await self.ensure_enabled(name)

        errors = await self.each(reenable, settled)
        problems += [str(e) for e in errors.values() if e is not None]
        if problems:
            raise PhaseFailed(
                "; ".join(problems) + f". The database stays as it is until every host serves"
                f" the previous release; run `portal-ops rollback {self.deployment_id}` again"
            )
        no_target = [n for n in self.reachable() if not self.targets.get(n)]
        note = (
            f"; no previous release on {', '.join(no_target)} (first deployment)"
            if no_target
            else ""
        )
        serving = self.alarm_to_serving()
        if serving is not None:
            note += f"; previous release serving {serving:.1f}s after the alarm"
        return f"{len(need)} host(s) switched back, {len(settled)} already on target{note}"

    def switch_groups(self, need: list[str], settled: list[str]) -> list[list[str]]:
        """Hosts never switched keep serving; when every host must move and a load balancer
        drains them, two halves, so some capacity always serves while the others drain,
        switch and reload. Without a load balancer nothing is drained (the switch is a
        rename, the reload graceful): all at once, one round trip."""
        drains = any(lb_action(self.config, self.host_config(n), "drain") for n in need)
        if settled or len(need) < 2 or not drains:
            return [need] if need else []
        return [need[: len(need) // 2], need[len(need) // 2 :]]

    def alarm_to_serving(self) -> float | None:
        """Seconds from the alarm to the last host serving the previous release again."""
        if not self.serving_at:
            return None
        alarm = self.trigger.get("fired_at") or self.started
        return round(max(self.serving_at.values()) - float(alarm), 3)

    async def switch_back(self, name: str) -> None:
        target = self.targets[name]
        assert target is not None

        def switched(host: str) -> None:
            self.current[host] = target

        # rb-verify's read of the host (Q01's question) rides the switch script, after the
        # reload: nothing but this run changes ``current`` under its lock (fenced), so
        # phase 9 does not ask again; the primary's database reads follow
        read = (
            ()
            if self.dry_run
            else (Step("current", self.read_current(name), readonly=True, may_fail=True),)
        )
        after = read + self.database_reads(name)
        await self.cut_over(
            name,
            target,
            before=self.current.get(name),
            strict=False,  # getting back matters more than a load balancer's answer
            steps=("reload",),  # workers restart in phase 7, on every host
            retry=True,
            on_switched=switched,
            after=after,
            on_after=lambda ran: self.after_switch(name, after, ran),
        )
        self.serving_at[name] = time.time()

    def after_switch(self, name: str, steps: tuple[Step, ...], ran: list[CommandResult]) -> None:
        """The reads that rode ``name``'s switch script: its ``current`` for rb-verify, the
        primary's leftover kill and migration count for rb-database."""
        got = dict(zip((s.name for s in steps), ran, strict=False))
        if "current" in got and got["current"].ok:
            self.verified[name] = got["current"].stdout
        if "migrate_status" in got:
            self.database_measured(name, got["stop_leftovers"], got["migrate_status"])

    def database_reads(self, name: str) -> tuple[Step, ...]:
        """What the database phase reads on the primary, riding its switch script: stop
        this deployment's leftover commands (a migrate cut off by a crash), then count the
        pending migrations against the baseline. Nothing decided here in between, and under
        the lock (the script is fenced); the count cannot move until the database phase,
        since every migrate of the deployment is stopped and the lock is ours. Not when a
        load balancer drains the primary (see below)."""
        status = self.cmd("migrate_status")
        if (
            self.dry_run
            or name != self.primary()
            or self.config.portal.database_rollback == "none"
            or not status
            or not self.release
            or self.checkpoint.get("pending_before") is None
            or getattr(self.hosts[name], "kill_tagged", None) is None
            # drained, the primary would wait for a leftover's kill (seconds) before it
            # serves again: then both stay in the database phase, after every host is back
            or lb_action(self.config, self.host_config(name), "drain") is not None
        ):
            return ()
        release_dir = self.layout(name).release(self.release)
        return (
            Step(
                "stop_leftovers",
                kill_tagged(self.deployment_id + ".", self.tag),
                quiet=True,
                may_fail=True,
            ),
            Step(
                "migrate_status",
                in_dir(release_dir, status, self.config.portal.env),
                readonly=True,
                may_fail=True,
            ),
        )

    def database_measured(self, name: str, stop: CommandResult, status: CommandResult) -> None:
        """Keep the primary's count, only when the leftovers were all stopped before it."""
        if not stop.ok:
            return
        left, alive = parse_left(stop.stdout)
        if alive:
            return  # the database phase stops them itself, and says so
        if left:
            self.incident(
                Severity.WARNING,
                f"{name}: stopped {left} leftover command(s) of {self.deployment_id}",
            )
        pending = recipes.parse_pending(status.stdout) if status.ok else None
        self.measured = {"host": name, "pending": pending}

    async def serves_healthy(self, name: str) -> bool:
        url = health_url(self.config, self.host_config(name))
        if not url or self.dry_run:
            return True
        ok, _ = await wait_healthy(url, self.config.rollout.health_timeout)
        return ok

    async def ensure_enabled(self, name: str) -> None:
        await self.load_balancer(name, "enable", strict=False)

    # -- 5 -----------------------------------------------------------------------------------

    async def phase_database(self) -> str:
        primary = self.primary()
        policy = self.config.portal.database_rollback
        if primary is None:
            raise PhaseFailed("no reachable host to run the database rollback on")
        if policy == "none":
            self.database_action = "none (policy)"
            return 'skipped: database_rollback = "none"'
        # the schema goes back only under code that expects it: every reachable host must
        # serve the target first (otherwise: v2 code on a v1 schema)
        off_target = [
            n
            for n in self.reachable()
            if self.targets.get(n) and self.current.get(n) != self.targets.get(n)
        ]
        if off_target and not self.dry_run:
            self.database_action = "NOT rolled back: " + ", ".join(off_target) + " not on target"
            raise PhaseFailed(
                f"database not rolled back: {', '.join(off_target)} still serve"
                f" {self.release}; fix them and run `portal-ops rollback {self.deployment_id}`"
            )
        env = self.config.portal.env
        release_dir = self.layout(primary).release(self.release) if self.release else None
        measured = self.measured if (self.measured or {}).get("host") == primary else None
        if measured is None:  # stopped in its switch script otherwise
            await self.confirm_dead(primary)  # an interrupted migrate must not run on
        await self.write_host_records("rolling_back", hold=True)  # before the primary's next
        steps = await self.migrations_to_undo(primary, release_dir)
        if steps is None:
            self.database_action = "UNKNOWN: cannot tell which migrations this deployment applied"
            self.incident(
                Severity.CRITICAL,
                f"cannot tell how many migrations {self.deployment_id} applied (no migrate_status"
                " command, and the run stopped before it recorded a count): the database was"
                " NOT rolled back. Check it, then run"
                f" `portal-ops rollback {self.deployment_id} --restore-dump` if it must go back",
            )
            raise PhaseFailed("database state unknown; not rolled back")
        manual_dump = self.restore_dump_asked or (
            policy == "dump" and self.trigger.get("kind") == "manual"
        )
        if steps == 0 and not self.restore_dump_asked:
            self.database_action = "nothing to undo"
            return "skipped: no migrations of this deployment are applied"
        if manual_dump:
            return await self.restore_dump(primary)
        command = self.cmd("migrate_rollback", steps=steps)
        if command and release_dir:
            result = await self.sh(primary, "migrate_rollback", in_dir(release_dir, command, env))
            if result.ok:
                self.database_action = f"rolled back {steps} migration(s)"
                return self.database_action + f" on {primary}"
            detail = result.tail()
        else:
            detail = "no migrate_rollback command configured"
        # never a dump restored behind the operator's back: it loses every write since phase 2
        self.database_action = f"FAILED: migrate_rollback ({detail}); dump NOT restored"
        self.incident(
            Severity.CRITICAL,
            f"migration rollback failed on {primary}: {detail}. The database still has"
            f" {steps} migration(s) of {self.deployment_id}. The verified dump was NOT restored"
            " (it would lose every write since the backup); to restore it run"
            f" `portal-ops rollback {self.deployment_id} --restore-dump`",
        )
        raise PhaseFailed(f"migration rollback failed: {detail}; dump not restored")

    async def migrations_to_undo(self, primary: str, release_dir: str | None) -> int | None:
        """How many of this deployment's migrations are still applied. Measured with
        ``migrate_status`` against the baseline recorded before ``migrate`` ran whenever
        both exist (exact and repeatable, even after a kill mid-migrate); else the count
        the deployment recorded (never twice); None when nobody can tell."""
        status = self.cmd("migrate_status")
        pending_before = self.checkpoint.get("pending_before")
        measured = self.measured if (self.measured or {}).get("host") == primary else None
        if measured is not None and measured["pending"] is not None and pending_before is not None:
            return max(0, int(pending_before) - int(measured["pending"]))
        if status and release_dir and pending_before is not None and not self.dry_run:
            result = await self.sh(
                primary,
                "migrate_status",
                in_dir(release_dir, status, self.config.portal.env),
                readonly=True,
            )
            pending_now = recipes.parse_pending(result.stdout) if result.ok else None
            if pending_now is not None:
                return max(0, int(pending_before) - pending_now)
        applied = self.checkpoint.get("migrations_applied")
        if applied is None:
            # the run stopped inside phase 5 (baseline recorded) with nothing to measure
            return None if self.checkpoint.get("baseline") else 0
        if int(applied) == 0:
            return 0
        if self.database_already_restored():
            return 0
        return int(applied)

    def database_already_restored(self) -> bool:
        for event in self.engine.journal.of_kind(
            self.deployment_id, Kind.PHASE_FINISHED, run="rollback"
        ):
            if (
                event.phase == "rb-database"
                and event.data.get("status") == "succeeded"
                and not event.data.get("dry_run")
            ):
                return True
        return False

    async def restore_dump(self, primary: str) -> str:
        backup = (self.checkpoint.get("backups") or {}).get("database")
        restore = recipes.command(self.config, "db_restore")
        if not backup or not restore:
            self.database_action = "FAILED: no database dump recorded or no restore command"
            raise PhaseFailed(
                "cannot restore the database: no verified dump recorded for this deployment, or no db_restore command"
            )
        file = backup["file"]
        verify = f"test -s {q(file)} && sha256sum -c --quiet {q(file + '.sha256')} && grep -qF {q(backup.get('sha256', ''))} {q(file + '.sha256')}"
        host = backup.get("host", primary)
        if host not in self.reachable():
            raise PhaseFailed(f"the dump is on {host}, which is unreachable")
        result = await self.sh(host, "verify_dump", verify, readonly=True)
        if not result.ok and not self.dry_run:
            self.database_action = "FAILED: dump missing or corrupt, not restored"
            self.incident(
                Severity.CRITICAL,
                f"database dump {file} on {host} is missing or its checksum does not match: NOT restored",
            )
            raise PhaseFailed(
                f"dump {file} missing or corrupt (checksum mismatch); nothing restored"
            )
        layout = self.layout(host)
        command = fill(restore, file=file)
        result = await self.sh(
            host, "db_restore", in_dir(layout.current, command, self.config.portal.env)
        )
        if not result.ok:
            self.database_action = "FAILED: restore command failed"
            raise PhaseFailed(f"restore failed on {host}: {result.tail()}")
        self.database_action = f"restored verified dump {file}"
        return self.database_action

    # -- 6 / 7 -------------------------------------------------------------------------------

    async def phase_assets(self) -> str:
        command = self.cmd("cache_clear")
        if not command:
            return "assets come back with the release folder; no cache_clear command configured"

        async def clear(name: str) -> None:
            result = await self.sh(
                name,
                "cache_clear",
                in_dir(self.layout(name).current, command, self.config.portal.env),
                retry_safe=True,
            )
            if not result.ok:
                raise PhaseFailed(f"{name}: cache clear failed: {result.tail()}")

        errors = await self.each(clear)
        bad = [str(e) for e in errors.values() if isinstance(e, PhaseFailed)]
        if bad:
            raise PhaseFailed("; ".join(bad))
        return f"caches cleared on {len(self.reachable())} host(s)"

    async def phase_restart(self) -> str:
        if not recipes.command(self.config, "restart_workers"):
            return "web processes reloaded during the switch; no restart_workers command configured"

        async def restart(name: str) -> None:
            command = self.cmd("restart_workers", **self.release_values(name))
            assert command is not None
            result = await self.sh(
                name,
                "restart_workers",
                in_dir(self.layout(name).current, command, self.config.portal.env),
                retry_safe=True,
            )
            if not result.ok:
                raise PhaseFailed(f"{name}: worker restart failed: {result.tail()}")

        errors = await self.each(restart)
        bad = [str(e) for e in errors.values() if isinstance(e, PhaseFailed)]
        if bad:
            raise PhaseFailed("; ".join(bad))
        return f"workers restarted on {len(self.reachable())} host(s)"

    # -- 9 -----------------------------------------------------------------------------------

    async def phase_verify(self) -> str:
        async def verify(name: str) -> None:
            read = self.verified.pop(name, None)
            if read is None:  # not switched by this run (or its read was cut off): ask now
                read = (
                    await self.sh(name, "current", self.read_current(name), readonly=True)
                ).stdout
            state = parse_probe(read)
            self.current[name] = state.current
            target = self.targets.get(name)
            if target and state.current != target and not self.dry_run:
                raise PhaseFailed(f"{name}: current is {state.current}, expected {target}")
            if UNFINISHED_MARKER in read.splitlines() and not self.dry_run:
                raise PhaseFailed(f"{name}: current -> {state.current}, marked unfinished")
            url = health_url(self.config, self.host_config(name))
            if url and not self.dry_run:
                ok, detail = await wait_healthy(url, self.config.rollout.health_timeout)
                if not ok:
                    raise PhaseFailed(f"{name}: {detail}")
            self.set_host_state(name, "rolled_back", release=state.current)

        errors = await self.each(verify)
        bad = [str(e) for e in errors.values() if isinstance(e, PhaseFailed)]
        if bad:
            raise PhaseFailed("; ".join(bad))
        releases = sorted({str(self.current.get(n)) for n in self.reachable()})
        if len(releases) > 1:
            raise PhaseFailed(f"hosts are on different releases: {releases}")
        release = releases[0] if releases else "?"
        scored = await self.scored_verification(release) if releases else ""
        return f"{len(self.reachable())} host(s) healthy on {release}{scored}"

    def still_on(self, name: str, target: str) -> Step:
        """A step that fails (and stops its script) unless ``current`` still points at
        ``target``: what rb-verify read, checked again in the script that unlocks."""
        layout = self.layout(name)
        current = q(layout.current)
        return Step(
            "still_on_target",
            f"[ {current} -ef {q(layout.release(target))} ] || "
            f"{{ c=$(readlink {current} 2>/dev/null); c=${{c%/}}; "
            f'printf "current is %s, not %s\\n" "${{c##*/}}" {q(target)} >&2; exit 1; }}',
            readonly=True,
            quiet=True,
        )

    def read_current(self, name: str) -> str:
        """What Q01 asks of a host, in the probe's words: where ``current`` points, and
        whether that release is marked unfinished (the marker's name on a line of its own),
        read with the shell's own ``-ef`` (see ``HostPaths.read_current``)."""
        layout = self.layout(name)
        marker = f"{layout.current}/{UNFINISHED_MARKER}"
        return (
            f"{layout.read_current('c')}; printf 'CURRENT=%s\\n' \"$c\"; "
            f"[ ! -e {q(marker)} ] || echo {q(UNFINISHED_MARKER)}"
        )

    def http_to_ask(self) -> bool:
        """Whether Q02, Q03 or Q06 could ask anything: a health URL (per host or the
        portal's), a public URL, or a full URL among their paths. Without any, all three
        skip, and a rollback does not load the checks to learn it (~30 ms)."""
        config, vc = self.config, self.config.validation
        urls = [config.portal.public_url, config.portal.health_url]
        urls += [h.health_url for h in config.hosts]
        paths = [vc.public_health_path or "", *vc.error_rate_paths]
        return any(urls) or any(p.startswith(("http://", "https://")) for p in paths)

    async def scored_verification(self, release: str) -> str:
        """The post-deployment checks that still mean something after a rollback: every host
        on the release, healthy per host and through the public URL, and the error rate."""
        self.note(f"post-deployment checks {', '.join(VERIFY_CHECKS)} against {release}")
        if self.dry_run:
            return ""
        if not self.http_to_ask():
            return f"; checks {', '.join(VERIFY_CHECKS)} skipped: nothing to ask over HTTP"
        from .adapters.checks import verify_release

        report = await verify_release(self, release, VERIFY_CHECKS)
        for check in report.checks:
            self.emit(
                Kind.STEP_OUTPUT,
                host=check.host,
                step="verify",
                stream="portal-ops",
                line=f"{check.id} {check.title}: {check.status} {check.message}",
            )
        if not report.checks or all(c.status == "skipped" for c in report.checks):
            # nothing configured to ask over HTTP: the hosts' own read above is the check
            return f"; checks {', '.join(VERIFY_CHECKS)} skipped (nothing configured to ask)"
        if not report.go:
            raise PhaseFailed(f"checks after the rollback: {'; '.join(report.reasons[:3])}")
        return f"; checks {', '.join(VERIFY_CHECKS)} score {report.score:.0f}, go"

    # -- 10 ----------------------------------------------------------------------------------

    async def phase_report(self) -> str:
        entry = {
            "release": self.release,
            "deployment_id": self.deployment_id,
            "state": "rolled_back",
            "at": time.time(),
            "operator": str(self.engine.operator),
            "reason": self.reason,
        }

        if self.failed_phases or self.unreachable:
            # partial: the lock stays (nobody deploys over a half-rolled-back portal)
            await self.write_host_records("partial")
            where = ", ".join(self.unreachable) or "see the failed phases"
            self.incident(
                Severity.CRITICAL,
                f"rollback of {self.deployment_id} is partial ({where}): "
                + "; ".join(self.failed_phases)
                + f". The lock is kept. Fix the cause, then run"
                f" `portal-ops rollback {self.deployment_id}` again (it converges).",
            )
            path = self.write_report()
            if not self.connected:
                await asyncio.gather(
                    *(h.close() for h in self.hosts.values()), return_exceptions=True
                )
            return f"partial: lock kept; report {path}"

        async def finish(name: str) -> None:
            # one script: the record, the release log, the unlock (each as before: a
            # failure of one does not stop the next), after a last look at ``current``:
            # a host moved since rb-verify read it keeps its lock and record
            layout = self.layout(name)
            target = self.targets.get(name)
            guard = [] if self.dry_run or not target else [self.still_on(name, target)]
            steps = [
                *guard,
                self.record_step(name, "rolled_back"),
                Step("release_log", layout.log_release(entry), may_fail=True),
            ]
            token = self.host_tokens.get(name, self.lock_token)
            if token:
                steps.append(Step("unlock", layout.lock_release(token), may_fail=True))
            ran = await self.sh_script(name, steps, retry_safe=True)
            if guard and ran and not ran[0].ok:
                raise PhaseFailed(f"{name}: {ran[0].tail()}; its lock and record are kept")

        if self.lease is not None:
            await self.lease.stop()
        errors = await self.each(finish) if self.release else {}
        moved = [str(e) for e in errors.values() if isinstance(e, PhaseFailed)]
        if moved:  # the Redis lock stays too: nobody deploys over it until it converges
            path = self.write_report()
            if not self.connected:
                await asyncio.gather(
                    *(h.close() for h in self.hosts.values()), return_exceptions=True
                )
            raise PhaseFailed(
                "; ".join(moved) + f". Run `portal-ops rollback {self.deployment_id}` again"
                f" (it converges); report {path}"
            )
        if not self.dry_run:
            try:
                token = str((self.redis_owner or {}).get("token") or self.lock_token)
                await asyncio.to_thread(redis_release, self.config, token)
            except Exception as exc:
                self.incident(Severity.WARNING, f"could not release the Redis lock: {exc}")
            self.emit(Kind.LOCK, action="released", holder={"deployment_id": self.deployment_id})
        path = self.write_report()
        if not self.connected:
            await asyncio.gather(*(h.close() for h in self.hosts.values()), return_exceptions=True)
        return f"release {self.release} marked rolled back; report {path}"

    def write_report(self) -> str:
        if self.dry_run:
            return "(not written in a dry-run)"
        path = self.report_path(f"{self.deployment_id}.rollback.json")
        path.write_text(
            redact(
                json.dumps(
                    {
                        "deployment_id": self.deployment_id,
                        "reason": self.reason,
                        "trigger": self.trigger,
                        "phases": [p.to_dict() for p in self.phase_results],
                        "targets": self.targets,
                        "database": self.database_action,
                        "unreachable": self.unreachable,
                    },
                    indent=2,
                    default=str,
                )
            )
        )
        return str(path)


async def rollback_deployment(
    engine: Engine,
    deployment_id: str | None,
    reason: str,
    *,
    trigger: dict[str, Any],
    dry_run: bool = False,
    force: bool = False,
    restore_dump: bool = False,
) -> RollbackResult:
    """Roll back a deployment: what the hosts recorded first, the journal as a cache, so it
    works from any machine holding the config. No id: the newest deployment on the hosts.
    Refused (RollbackError, nothing changed) for an unknown id, a dry-run, a run still alive
    on this machine, or a deployment older than the newest live one (unless ``force``)."""
    journal = engine.journal
    hosts = engine.make_hosts([h.name for h in engine.config.hosts])
    # the lock is taken in the survey's own script where it is free (never in a dry-run),
    # given back at once if the rollback is then refused or the host is not in play
    owner = None if dry_run else new_owner(deployment_id or "", engine.operator, os.getpid())
    if owner is not None and not deployment_id:  # named in each host's next script
        owner["picking"] = True
    locks: dict[str, tuple[str, dict[str, Any]]] = {}
    try:
        states = await survey(engine.config, hosts, lock=owner, locks=locks)
        views = merge(states)
        deployment_id, row, view = pick_deployment(engine, deployment_id, views, "roll back")
        if row is not None and row.get("dry_run"):
            raise RollbackError(f"{deployment_id} was a dry-run; there is nothing to roll back")
        refuse_if_alive(engine, deployment_id, row, view, force)
        if view is not None and not force:
            newer = newer_than(views, view)
            if newer:
                ids = ", ".join(f"{v.deployment_id} ({v.status or '?'})" for v in newer)
                raise RollbackError(
                    f"{deployment_id} is not the newest live deployment: after it came {ids}."
                    " Rolling it back would undo their migrations too. Roll back"
                    f" {newer[-1].deployment_id} first (`portal-ops rollback"
                    f" {newer[-1].deployment_id}`), or pass --force to go back past them."
                )
    except BaseException:
        await give_back(engine.config, hosts, locks, owner)
        await asyncio.gather(*(h.close() for h in hosts.values()), return_exceptions=True)
        raise
    limit = ((row or {}).get("options") or (view.options if view else {}) or {}).get("limit")
    if limit:  # a limited deployment (--hosts/--roles): the other hosts were never touched
        others = {n: h for n, h in hosts.items() if n not in limit}
        await give_back(engine.config, others, locks, owner)
        await asyncio.gather(*(h.close() for h in others.values()), return_exceptions=True)
        hosts = {n: h for n, h in hosts.items() if n in limit}
    checkpoint = journal.last_checkpoint(deployment_id) if row is not None else {}
    if not checkpoint and view is not None:
        checkpoint = view.checkpoint()
    if not checkpoint:
        release = (row or {}).get("release", "")
        checkpoint = {"release": release, "previous": {}, "migrations_applied": 0}
    if row is None and view is not None and not dry_run:
        journal.cache_deployment(view.to_dict() | {"target": engine.config.portal.name})
    run = RollbackRun(
        engine,
        deployment_id,
        hosts,
        checkpoint,
        reason=reason or "manual rollback",
        trigger=trigger,
        dry_run=dry_run,
        owns_lock_token=checkpoint.get("lock_token") or (view.lock_token if view else None),
        restore_dump=restore_dump,
        surveyed=states,
        survey_locks={n: a for n, a in locks.items() if n in hosts},
        survey_owner=owner,
    )
    run.plan.limit = list(limit) if limit else engine.config.limit
    if force and view is not None:
        newer = newer_than(views, view)
        if newer:
            run.incident(
                Severity.WARNING,
                f"--force: rolling {deployment_id} back past "
                + ", ".join(f"{v.deployment_id} ({v.status}, release {v.release})" for v in newer),
            )
    return await run.execute()


async def survey(
    config: Any,
    hosts: dict[str, Host],
    *,
    lock: dict[str, Any] | None = None,
    locks: dict[str, tuple[str, dict[str, Any]]] | None = None,
) -> dict[str, HostState]:
    """Connect and probe every host at once; the reachable ones' state. With ``lock`` (an
    owner), the same script then takes each host's lock where it is free, and ``locks``
    gets each host's answer (``LOCKED``, or ``HELD`` and its holder): a rollback's lock
    costs no round trip of its own."""
    from .layout import Layout

    failures = await connect_all(list(hosts.values()))
    problems.clear()
    problems.update({n: str(e) for n, e in failures.items()})
    between = f"@@portal-ops-lock:{secrets.token_hex(8)}"

    async def one(name: str) -> tuple[str, HostState | None]:
        if name in failures:
            return name, None
        layout = Layout(config.deploy_path(config.host(name)))
        command = layout.probe()
        if lock is not None:
            command += f"; printf '\\n%s\\n' {q(between)}; {layout.lock_acquire(lock)}"
        try:
            # taking a free lock is safe to repeat: a retry finds it held with our token
            result = await hosts[name].run(command, timeout=30, retry_safe=True)
        except TransportError as exc:
            problems[name] = str(exc)
            return name, None
        probed, _, locked = result.stdout.partition(between)
        if lock is not None and locks is not None and locked:
            status, holder = parse_lock_output(locked)
            if status == "HELD" and holder.get("token") == lock["token"]:
                status = "LOCKED"  # ours, taken by an attempt cut off before it answered
            locks[name] = (status, holder)
        return name, parse_probe(probed)

    found = await asyncio.gather(*(one(n) for n in hosts))
    return {name: state for name, state in found if state is not None}


problems: dict[str, str] = {}  # hosts the last survey could not read, and why


async def give_back(
    config: Any,
    hosts: dict[str, Host],
    locks: dict[str, tuple[str, dict[str, Any]]],
    owner: dict[str, Any] | None,
) -> None:
    """Release the locks the survey took on ``hosts`` (a refused rollback, hosts outside a
    limited deployment): only where they still hold the survey's token."""
    from .layout import Layout

    if owner is None:
        return
    taken = [n for n in hosts if locks.get(n, ("",))[0] == "LOCKED"]

    async def one(name: str) -> None:
        layout = Layout(config.deploy_path(config.host(name)))
        await hosts[name].run(layout.lock_release(owner["token"]), timeout=30, retry_safe=True)

    with contextlib.suppress(BaseException):
        await asyncio.gather(*(one(n) for n in taken), return_exceptions=True)


async def unfinished_on_hosts(
    config: Any, dead: set[str] | None = None, hosts: dict[str, Host] | None = None
) -> list[DeploymentView]:
    """The deployments the hosts record as unfinished (running, interrupted, paused, rolling
    back) whose lock is no longer renewed, whatever machine started them: what a crash
    warning names. A run whose lease is live is running somewhere, not crashed, unless it is
    in ``dead`` (this machine's journal saw its process die). ``hosts``: read through these
    and leave them open (a deployment goes on with them); otherwise its own, closed."""
    from ..transport import make_host
    from .lock import read_locks

    own = hosts is None
    if hosts is None:
        hosts = {h.name: make_host(config, h) for h in config.hosts}
    try:
        states = await survey(config, hosts)
        holders = await read_locks(config, {n: h for n, h in hosts.items() if n in states})
    finally:
        if own:
            await asyncio.gather(*(h.close() for h in hosts.values()), return_exceptions=True)
    live = {str(h.owner.get("deployment_id")) for h in holders if not h.stale} - (dead or set())
    views = merge(states)
    return sorted(
        (v for v in views.values() if v.unfinished and v.deployment_id not in live),
        key=lambda v: v.started_at,
    )


def pick_deployment(
    engine: Engine,
    deployment_id: str | None,
    views: dict[str, DeploymentView],
    verb: str,
) -> tuple[str, dict[str, Any] | None, DeploymentView | None]:
    """The deployment named (or the newest the hosts know, then the journal's newest),
    its journal row and the hosts' view of it; RollbackError when nobody knows it."""
    journal = engine.journal
    if deployment_id is None:
        latest = newest(views)
        if latest is not None:
            deployment_id = latest.deployment_id
        else:
            row = journal.latest_deployment(engine.config.portal.name)
            if row is None:
                raise RollbackError(
                    f"no deployment to {verb}: the hosts record none and the journal is empty"
                )
            deployment_id = str(row["id"])
    row = journal.get_deployment(deployment_id)
    view = views.get(deployment_id)
    if row is None and view is None:
        known = sorted(views, reverse=True)[:5] or [
            r["id"] for r in journal.list_deployments(limit=5)
        ]
        unread = "; ".join(f"{n}: {why}" for n, why in problems.items())
        raise RollbackError(
            f"unknown deployment id {deployment_id!r}: neither the hosts nor the journal know"
            f" it (recent: {', '.join(known) or 'none'}). See `portal-ops history`."
            + (f" Hosts not read: {unread}" if unread else "")
        )
    return deployment_id, row, view


def refuse_if_alive(
    engine: Engine,
    deployment_id: str,
    row: dict[str, Any] | None,
    view: DeploymentView | None,
    force: bool,
) -> None:
    """A run still alive on this machine is stopped first (its room's rollback key, Ctrl-C)."""
    pid = (row or {}).get("pid") if row and row.get("status") == "running" else None
    here = view is not None and view.machine == engine.operator.host
    if pid is None and view is not None and view.status == "running" and here:
        pid = view.pid
    if pid and process_alive(pid) and pid != os.getpid() and not force:
        raise RollbackError(
            f"{deployment_id} is still running in process {pid}; stop it first"
            " (Ctrl-C, or the rollback key in its control room)"
        )
