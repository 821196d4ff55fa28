"""One run (a deployment or a rollback): its hosts, its events, and the single place where
commands are executed, or, in a dry-run, recorded instead.

Because every phase goes through :meth:`Run.sh`, the dry-run walks the very same code as a
real run and prints the exact commands it would execute; read-only probes (marked
``readonly``) still run so the plan is built from the hosts' real state.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import recipes
from ..config import Config, HostConfig
from ..events import Event, EventBus, Kind, Severity
from ..paths import state_dir
from ..shell import fill, in_dir
from ..transport import CommandResult, Host, TransportError
from ..transport.base import command_tag
from .layout import Layout
from .lock import Lease, LockLost
from .script import Step, StepEnded, first_failure, run_script
from .traffic import health_url, lb_action, perform, wait_drained, wait_healthy


@dataclass
class PlannedCommand:
    phase: str
    host: str
    step: str
    command: str
    readonly: bool = False


@dataclass
class PlannedAction:
    phase: str
    host: str | None
    text: str


@dataclass
class Plan:
    """What a run does, command for command, grouped by phase and host."""

    deployment_id: str
    release_id: str
    revision: str
    phase_titles: tuple[tuple[str, str], ...]
    commands: list[PlannedCommand] = field(default_factory=list)
    actions: list[PlannedAction] = field(default_factory=list)
    limit: list[str] | None = None  # --hosts/--roles: the only hosts this run touches

    def render(self) -> str:
        lines = [
            f"Plan for {self.deployment_id}: release {self.release_id}, revision {self.revision}",
            "(read-only probes marked 'probe' were run to build this plan; nothing was changed)",
        ]
        if self.limit is not None:
            lines.append(
                f"LIMITED to {len(self.limit)} host(s): {', '.join(self.limit)}"
                " (--hosts/--roles); every other host is left untouched"
            )
        for number, (name, title) in enumerate(self.phase_titles, 1):
            lines.append(f"\n[{number}/{len(self.phase_titles)}] {title} ({name})")
            items = [a for a in self.actions if a.phase == name]
            for action in items:
                where = f"{action.host}: " if action.host else ""
                lines.append(f"  - {where}{action.text}")
            by_host: dict[str, list[PlannedCommand]] = {}
            for cmd in self.commands:
                if cmd.phase == name:
                    by_host.setdefault(cmd.host, []).append(cmd)
            for host, cmds in by_host.items():
                lines.append(f"  {host}:")
                for cmd in cmds:
                    tag = "probe" if cmd.readonly else "run"
                    lines.append(f"    [{tag}:{cmd.step}] {cmd.command}")
            if not items and not by_host:
                lines.append("  (nothing to do)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment_id": self.deployment_id,
            "release_id": self.release_id,
            "revision": self.revision,
            "limit": self.limit,
            "phases": [
                {
                    "name": name,
                    "title": title,
                    "actions": [
                        {"host": a.host, "text": a.text} for a in self.actions if a.phase == name
                    ],
                    "commands": [
                        {
                            "host": c.host,
                            "step": c.step,
                            "command": c.command,
                            "readonly": c.readonly,
                        }
                        for c in self.commands
                        if c.phase == name
                    ],
                }
                for name, title in self.phase_titles
            ],
        }


class PhaseFailed(Exception):
    """A phase could not complete; ``hosts`` names the hosts it failed on."""

    def __init__(self, message: str, hosts: list[str] | None = None) -> None:
        self.hosts = hosts or []
        super().__init__(message)


def _unexpected(exc: BaseException, host: str | None = None) -> PhaseFailed:
    """Any other exception (KeyError from a template, InvalidURL, an SQLite error) as a
    phase failure that names its type, so the failure path (stop, roll back) runs."""
    where = f"{host}: " if host else ""
    return PhaseFailed(f"{where}{type(exc).__name__}: {exc}", [host] if host else [])


@dataclass
class PhaseResult:
    name: str
    title: str
    number: int
    status: str  # succeeded | failed | skipped | paused | interrupted
    seconds: float
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "number": self.number,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
        }


class Run:
    """Shared machinery of a deployment or rollback run."""

    kind = "deploy"

    def __init__(
        self,
        config: Config,
        bus: EventBus,
        deployment_id: str,
        hosts: dict[str, Host],
        *,
        dry_run: bool,
        plan: Plan,
    ) -> None:
        self.config = config
        self.bus = bus
        self.deployment_id = deployment_id
        self.hosts = hosts
        self.dry_run = dry_run
        self.plan = plan
        self.phase = ""
        self.phase_results: list[PhaseResult] = []
        self.host_state: dict[str, dict[str, Any]] = {name: {"state": "pending"} for name in hosts}
        self.lease: Lease | None = None  # the lock's lease, once taken: the fencing check
        # this run's remote commands carry it in their pid files (see transport.remote_group)
        self.tag = f"{deployment_id}.{self.kind}-{secrets.token_hex(3)}"
        # steps that need no decision here, held until the next command on their host goes
        # out with them as one script (backend/engine/script.py): the host record
        self.prelude: dict[str, list[Step]] = {}

    async def confirm_dead(self, name: str) -> None:
        """Stop what is left of this deployment's earlier runs on ``name`` (a run cut off by
        a crash or a lost link: a migrate still running) and wait until it is gone."""
        if self.dry_run:
            return
        killer = getattr(self.hosts[name], "kill_tagged", None)
        if killer is None:
            return
        tagged = command_tag.set(self.tag)
        try:
            left = await killer(self.deployment_id)
        finally:
            command_tag.reset(tagged)
        if left:
            self.incident(
                Severity.WARNING,
                f"{name}: stopped {left} leftover command(s) of {self.deployment_id}",
            )

    def report_path(self, name: str) -> Path:
        """Where this run's JSON report goes: the state dir's reports/, made on first use."""
        directory = state_dir(self.config.state.dir) / "reports"
        directory.mkdir(parents=True, exist_ok=True)
        return directory / name

    # -- events ------------------------------------------------------------------------------

    def emit(self, kind: Kind, *, host: str | None = None, **data: Any) -> Event:
        if self.dry_run:
            data.setdefault("dry_run", True)
        return self.bus.emit(
            Event(
                kind=kind,
                deployment_id=self.deployment_id,
                run=self.kind,
                phase=self.phase or None,
                host=host,
                data=data,
            )
        )

    def incident(self, severity: Severity, message: str, **evidence: Any) -> None:
        self.emit(Kind.INCIDENT, severity=str(severity), message=message, evidence=evidence)

    def set_host_state(self, host: str, state: str, **extra: Any) -> None:
        self.host_state.setdefault(host, {}).update(state=state, **extra)
        self.emit(Kind.HOST_STATE, host=host, **self.host_state[host])

    def note(self, text: str, host: str | None = None) -> None:
        """A non-shell action of this phase (HTTP call, check, flag change), for the plan."""
        self.plan.actions.append(PlannedAction(self.phase, host, text))

    # -- commands ----------------------------------------------------------------------------

    def host_config(self, name: str) -> HostConfig:
        return self.config.host(name)

    def layout(self, host: str) -> Layout:
        return Layout(self.config.deploy_path(self.host_config(host)))

    def release_values(self, host: str) -> dict[str, str]:
        """``{{release}}``, ``{{deploy_path}}``, ``{{shared}}`` of the live release on ``host``."""
        layout = self.layout(host)
        return {
            "release": layout.current,
            "deploy_path": layout.deploy_path,
            "shared": layout.shared,
        }

    def cmd(self, step: str, **values: Any) -> str | None:
        """The configured (or recipe) command of ``step``, placeholders filled and quoted."""
        template = recipes.command(self.config, step)
        return fill(template, **values) if template else None

    async def step_ok(self, host: str, step: str, command: str, **kw: Any) -> CommandResult:
        """``sh``, and a non-zero exit status fails the phase on this host, saying why."""
        result = await self.sh(host, step, command, **kw)
        if not result.ok:
            raise PhaseFailed(
                f"{host}: {step} exited {result.exit_status}: {result.tail()}", [host]
            )
        return result

    async def sh(
        self,
        host: str,
        step: str,
        command: str,
        *,
        readonly: bool = False,
        retry_safe: bool = False,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run (or, in a dry-run, record) one command on one host, streaming its output."""
        fenced = (  # a change under the lock goes as a script: the host checks the token
            self.lease is not None
            and host in self.lease.tokens
            and not readonly
            and step not in ("lock", "unlock")
        )
        if (self.prelude.get(host) or fenced) and not self.dry_run:
            step_ = Step(step, command, readonly=readonly, may_fail=True)
            (result,) = await self.sh_script(
                host, [step_], retry_safe=retry_safe or readonly, timeout=timeout
            )
            return result
        self.plan.commands.append(PlannedCommand(self.phase, host, step, command, readonly))
        if self.dry_run and not readonly:
            return CommandResult(host, command, 0, "", "", 0.0)
        if self.lease is not None and not readonly and step not in ("lock", "unlock"):
            try:  # fencing: a run whose lock was removed or taken over stops here
                self.lease.check()
            except LockLost as exc:
                raise PhaseFailed(f"{host}: {step} not run: {exc}", [host]) from None
        self.emit(Kind.STEP_STARTED, host=host, step=step, command=command)
        started = time.monotonic()

        def on_line(stream: str, line: str) -> None:
            self.emit(Kind.STEP_OUTPUT, host=host, step=step, stream=stream, line=line)

        if timeout is None:
            timeout = self.config.ssh.step_timeouts.get(step)
        tagged = command_tag.set(self.tag)
        try:
            result = await self.hosts[host].run(
                command,
                timeout=timeout,
                on_line=on_line,
                retry_safe=retry_safe or readonly,
            )
        except TransportError as exc:
            self.emit(
                Kind.STEP_FINISHED,
                host=host,
                step=step,
                ok=False,
                exit_status=None,
                seconds=round(time.monotonic() - started, 3),
                error=str(exc),
            )
            raise
        finally:
            command_tag.reset(tagged)
        self.emit(
            Kind.STEP_FINISHED,
            host=host,
            step=step,
            ok=result.ok,
            exit_status=result.exit_status,
            seconds=round(result.seconds, 3),
        )
        return result

    async def sh_script(
        self,
        host: str,
        steps: list[Step],
        *,
        retry_safe: bool = False,
        timeout: float | None = None,
        on_end: StepEnded | None = None,
        unlock_fenced: bool = False,
    ) -> list[CommandResult]:
        """Several steps as one remote script (see script.py), after the host's held
        prelude; the results of ``steps`` that ran, up to the first failing one. A failing
        prelude step (the host record) fails the phase on this host before any step.
        ``on_end(step, status)`` is told as each step ends, while the script goes on;
        ``unlock_fenced``: see backend/engine/script.py's ``_fence``."""
        held = [] if self.dry_run else self.prelude.pop(host, [])
        every = held + steps
        results = await run_script(
            self,
            host,
            every,
            retry_safe=retry_safe or not steps,  # held steps (records) are safe to repeat
            timeout=timeout,
            on_end=on_end,
            unlock_fenced=unlock_fenced,
        )
        failed = first_failure(every, results)
        if failed is not None and failed < len(held):
            raise PhaseFailed(f"{host}: {held[failed].name}: {results[failed].tail()}", [host])
        return results[len(held) :]

    def hold(self, host: str, step: Step) -> None:
        """Hold ``step`` until the next command on ``host`` (or :meth:`flush`), replacing a
        held step of the same name (a newer host record supersedes the older)."""
        kept = [s for s in self.prelude.get(host, []) if s.name != step.name]
        self.prelude[host] = [*kept, step]

    async def flush(self, names: list[str] | None = None) -> None:
        """Send what is held for ``names`` (default: every host) now, one script each."""
        targets = [
            n for n in (names if names is not None else list(self.prelude)) if n in self.hosts
        ]

        async def one(name: str) -> None:
            if self.prelude.get(name):
                await self.sh_script(name, [], retry_safe=True)

        errors = await self.on_hosts([n for n in targets if self.prelude.get(n)], one)
        bad = [e for e in errors.values() if e]
        if bad:
            raise PhaseFailed("; ".join(map(str, bad)), [n for n, e in errors.items() if e])

    # -- moving one host's traffic ----------------------------------------------------------

    async def cut_over(
        self,
        name: str,
        release: str,
        *,
        before: str | None,
        strict: bool,
        steps: tuple[str, ...] = ("reload", "restart_workers"),
        retry: bool = False,
        on_switched: Callable[[str], Any] | None = None,
        after: tuple[Step, ...] = (),
        on_after: Callable[[list[CommandResult]], Any] | None = None,
    ) -> None:
        """Move one host to ``release`` without dropping a request: drain it from the load
        balancer, switch ``current``, run ``steps`` (reload...), wait until it is healthy,
        put it back. ``strict``: a load-balancer failure fails the host (a deployment);
        otherwise it is an incident and the cut-over goes on (a rollback must get back).
        ``retry``: commands are repeated after a lost connection (a rollback's are).
        ``after``: steps that ride the same script once ``steps`` succeeded (``may_fail``:
        they never fail the host); ``on_after`` gets the results of those that ran."""
        layout = self.layout(name)
        rollout = self.config.rollout
        if lb_action(self.config, self.host_config(name), "drain"):
            self.set_host_state(name, "draining", release=before)
            await self.mark_traffic(name, "drained")
            await self.load_balancer(name, "drain", strict=strict)
            if not self.dry_run:
                drained = await wait_drained(self.config, self.host_config(name))
                if not drained.ok:
                    self.incident(Severity.WARNING, f"{name}: {drained.detail}; switching anyway")
        self.set_host_state(name, "switching", release=before)
        # switch, reload, restart workers: no decision here in between, so one script (the
        # host's held record first); each step keeps its events, status and output, and a
        # failing step stops the script and fails the host with the words it always had
        script = [Step("switch", layout.switch(release))]
        for step in steps:
            command = self.cmd(step, **self.release_values(name))
            if command:
                script.append(Step(step, in_dir(layout.current, command, self.config.portal.env)))
        switched = False

        def on_end(step: Step, status: int) -> None:
            # the moment the switch ends well, the host counts as switched: a link lost in
            # the reload after it must not hide the switch from the rollback
            nonlocal switched
            if step is script[0] and status == 0 and not switched:
                switched = True
                if on_switched is not None:
                    on_switched(name)
                self.set_host_state(name, "switched", release=release)

        ran = await self.sh_script(
            name,
            script + list(after),
            # the switch alone is safe to repeat; reload and restart only in a rollback's
            retry_safe=retry or len(script) == 1,
            on_end=on_end,
        )
        if after and on_after is not None and len(ran) > len(script):
            on_after(ran[len(script) :])
        ran = ran[: len(script)]
        if ran and ran[0].ok:
            on_end(script[0], 0)  # a dry-run: nothing ran, every step "ended" well
        failed = first_failure(script, ran)
        if failed is None and len(ran) < len(script):  # stopped without a status for it
            raise PhaseFailed(f"{name}: {script[len(ran)].name} did not finish", [name])
        if failed is not None:
            raise PhaseFailed(
                f"{name}: {script[failed].name} exited {ran[failed].exit_status}:"
                f" {ran[failed].tail()}",
                [name],
            )
        url = health_url(self.config, self.host_config(name))
        if url:
            self.note(f"wait until {url} answers 2xx (up to {rollout.health_timeout:g}s)", name)
            if not self.dry_run:
                ok, detail = await wait_healthy(url, rollout.health_timeout)
                if not ok:
                    self.set_host_state(name, "unhealthy", release=release, error=detail)
                    raise PhaseFailed(f"{name}: health check failed on {release}: {detail}", [name])
        await self.load_balancer(name, "enable", strict=strict)
        if lb_action(self.config, self.host_config(name), "enable"):
            await self.mark_traffic(name, "serving")
        self.set_host_state(name, "live", release=release)

    async def mark_traffic(self, name: str, traffic: str) -> None:
        """Record on the host that it is ``drained`` (before the drain) or ``serving`` again:
        a deployment writes it to its host record; a rollback has no record of its own."""

    async def load_balancer(self, name: str, action: str, *, strict: bool) -> None:
        """``drain`` or ``enable`` one host in the load balancer, if one is configured."""
        target = lb_action(self.config, self.host_config(name), action)
        if target is None:
            return
        await self.flush([name])  # the host's record first: a drain changes its traffic
        self.note(f"load balancer: {target[0]} {target[1]} ({action})", name)
        if self.dry_run:
            return
        outcome = await perform(self.config, self.host_config(name), action)
        for line in (outcome.output or outcome.detail).splitlines()[-20:]:
            self.emit(Kind.STEP_OUTPUT, host=name, step=f"lb_{action}", stream="lb", line=line)
        ok, detail = outcome.ok, outcome.detail
        if ok:
            return
        if strict:
            raise PhaseFailed(f"{name}: {action} in the load balancer failed: {detail}", [name])
        self.incident(Severity.ERROR, f"{name}: could not {action} in the load balancer: {detail}")

    async def on_hosts(
        self,
        names: list[str],
        work: Callable[[str], Awaitable[Any]],
        *,
        concurrency: int | None = None,
    ) -> dict[str, BaseException | None]:
        """Run ``work(host)`` on hosts in parallel (bounded); returns each host's error."""
        limit = asyncio.Semaphore(concurrency or self.config.rollout.concurrency)

        async def one(name: str) -> BaseException | None:
            async with limit:
                try:
                    await work(name)
                    return None
                except Exception as exc:  # every error is this host's failure, never an escape
                    return (
                        exc
                        if isinstance(exc, PhaseFailed | TransportError)
                        else _unexpected(exc, name)
                    )

        results = await asyncio.gather(*(one(n) for n in names))
        return dict(zip(names, results, strict=True))

    async def timed_phase(
        self,
        number: int,
        name: str,
        title: str,
        body: Callable[[], Awaitable[str | None]],
    ) -> PhaseResult:
        """Run one phase, timed and journaled; ``body`` returns a detail line or raises."""
        self.phase = name
        self.emit(Kind.PHASE_STARTED, number=number, title=title)
        started = time.monotonic()

        def finish(status: str, detail: str) -> PhaseResult:
            result = PhaseResult(name, title, number, status, time.monotonic() - started, detail)
            self.phase_results.append(result)
            self.emit(
                Kind.PHASE_FINISHED,
                number=number,
                title=title,
                status=status,
                seconds=round(result.seconds, 3),
                detail=detail,
            )
            return result

        status, detail = "succeeded", ""
        try:
            from .hooks import with_hooks  # [hooks]: commands before/after this phase

            detail = (await with_hooks(self, name, body)) or ""
            if detail.startswith("skipped"):
                status = "skipped"
        except PhaseFailed as exc:
            status, detail = "failed", str(exc)
        except TransportError as exc:
            status, detail = "failed", str(exc)
        except Exception as exc:  # a bug or a bad value: a failed phase, with the normal path
            status, detail = "failed", str(_unexpected(exc))
        except asyncio.CancelledError:
            finish("interrupted", "cancelled by the operator")
            raise
        return finish(status, detail)
