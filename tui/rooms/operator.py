"""``portal-ops ui`` (and the demo): every action of the registry, the engine in an App
worker; deploy behind its plan dialog, rollback behind a typed id and a reason, flag changes
armed by a second press."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from textual.binding import BindingType

from backend.events import EventBus
from backend.identity import current_operator
from backend.journal import Journal

from ..actions import available, bindings
from ..messages import RunFinished
from ..widgets.tables import FlagTable
from .base import RoomApp

if TYPE_CHECKING:
    from ..screens.confirm import ConfirmDeploy

ROLLBACK_WHAT = (
    "The ten rollback phases run on {hosts}: declare the incident and take the lock, flags"
    " off, maintenance on if the database must go back, `current` switched to the previous"
    " release on every host, database back, caches, restart, maintenance off, verify health,"
    " report. Running it twice is safe."
)


STOP_PATIENCE = 30.0  # seconds between two "still stopping" notes while a run is cancelled


def build_engine(config: Any, journal: Journal, bus: EventBus) -> Any:
    from backend.engine import Engine

    return Engine(config, journal=journal, bus=bus)


class _ThreadSafeBus:
    """Lets a blocking service run in a thread yet emit on the event loop, in order."""

    def __init__(self, bus: EventBus, loop: asyncio.AbstractEventLoop) -> None:
        self.bus = bus
        self.loop = loop

    def emit(self, event: Any) -> Any:
        self.loop.call_soon_threadsafe(self.bus.emit, event)
        return event


class OperatorRoom(RoomApp):
    """``portal-ops ui``: every action, the engine in an App worker."""

    BINDINGS: ClassVar[list[BindingType]] = bindings(available(watch=False))
    _shown_before_run: str | None = None  # the deployment on screen when a run began

    def _start_run(self, kind: str, make: Callable[[], Any], target: str | None = None) -> None:
        self._start_notifier()  # if its thread has not attached it yet
        shown = self.bridge.state.deployment if self.bridge is not None else None
        self._shown_before_run = shown.id if shown is not None else None
        self.engine_worker = self.run_worker(
            self._run(kind, make, target), name=kind, group="engine", exit_on_error=False
        )
        self.refresh_bindings()

    async def _run(self, kind: str, make: Callable[[], Any], target: str | None) -> None:
        try:
            result = await make()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self._did_not_run(kind, target, error)
            self.post_message(RunFinished(kind, target, "error", error))
            return
        outcome = str(getattr(result, "outcome", "finished"))
        error = str(getattr(result, "error", "") or "")
        self.post_message(RunFinished(kind, getattr(result, "deployment_id", None), outcome, error))

    def _did_not_run(self, kind: str, target: str | None, error: str) -> None:
        """A run the engine refused (a rollback of a deployment that is not the newest, a
        lock another holds) is an error line in the log and the journal, not only a toast
        that fades: the operator pressed a key and must see what became of it."""
        from backend.events import Event, Kind, Severity

        if self.engine is None:
            return
        self.engine.bus.emit(
            Event(
                Kind.INCIDENT,
                deployment_id=target,
                run=kind,
                data={"severity": Severity.ERROR, "message": f"{kind} not started: {error}"},
            )
        )

    def _own_deployment(self) -> tuple[bool, str | None]:
        """(whether a deployment of this room runs, its id when known).

        The engine names the deployment it runs at once; the screen's state follows the
        engine's events one flush (0.2 s, more with --fps) behind. R pressed just after `y`
        therefore named the deployment before it: the room cancelled the new one, and the
        engine refused to roll back the old one (not the newest live deployment), so no
        rollback ever showed. Between the worker's start and the engine naming its
        deployment, and after the engine let go of it, the newest state tells, if it
        already shows a deployment other than the one shown when the run began."""
        worker = self.engine_worker
        if worker is None or not worker.is_running or worker.name != "deploy":
            return False, None
        current = getattr(self._engine, "current", None)
        if current is not None:
            return True, None if current.dry_run else str(current.deployment_id)
        shown = self.bridge.state.deployment if self.bridge is not None else None
        if shown is not None and shown.id != self._shown_before_run and not shown.dry_run:
            return True, shown.id
        return True, None

    def _rollback_target(self) -> str | None:
        running, deployment_id = self._own_deployment()
        return deployment_id if running else super()._rollback_target()

    def unavailable(self, name: str) -> str | None:
        if name == "rollback" and self._own_deployment() == (True, None):
            return "the deployment is starting: its id is not known yet, press R again"
        return super().unavailable(name)

    def _wire(self, config: Any) -> None:
        """Loaded after the first frame: the journal and the engine's bus now, the engine
        itself (built on first use) from them."""
        if self.has_engine:
            return
        if self.journal is None:
            from backend.paths import state_dir

            self.journal = Journal(state_dir(config.state.dir) / "journal.db")
        self.bus = EventBus()
        self._engine_factory = partial(build_engine, config, self.journal, self.bus)

    # -- deploy ---------------------------------------------------------------------------

    def action_deploy(self) -> None:
        if not self._allowed("deploy"):
            return
        self.notify("building the dry-run plan (read-only probes run on the hosts)…", timeout=4)
        self.run_worker(self._prepare_deploy(), name="plan", group="plan", exclusive=True)

    async def _prepare_deploy(self) -> None:
        try:
            plan = await self.engine.plan()
        except Exception as exc:
            self.notify(f"cannot plan the deployment: {exc}", severity="error", timeout=20)
            return
        config = self.config
        hosts = [h.name for h in config.hosts] if config else []
        summary = (
            f"{config.portal.name if config else 'portal'}: revision {plan.revision},"
            f" release {plan.release_id}, on {len(hosts)} host(s) ({', '.join(hosts)})"
            + (f" in batches {' / '.join(config.rollout.batches)}" if config else "")
            + ". The plan below is every command a real run executes."
        )
        from ..screens.confirm import ConfirmDeploy

        self.open_plan(ConfirmDeploy(summary, plan.render()))

    def open_plan(self, dialog: ConfirmDeploy) -> None:
        """Show the plan: the "building the plan" toast goes first, so nothing covers it."""
        self.clear_notifications()
        self.call_later(self.clear_notifications)  # one still queued goes too
        self.push_screen(dialog, self._deploy_confirmed)

    def _deploy_confirmed(self, ok: object) -> None:
        if ok and self._allowed("deploy"):
            self._start_run("deploy", lambda: self.engine.deploy())

    # -- rollback -------------------------------------------------------------------------

    def action_rollback(self) -> None:
        if not self._allowed("rollback"):
            return
        target = self._rollback_target()
        assert target is not None
        current = getattr(self._engine, "current", None)
        if current is not None and current.deployment_id == target:
            hosts: Sequence[str] = current.fleet
        else:
            dep = self.state.deployment
            hosts = dep.hosts if dep is not None and dep.id == target else ()
        what = ROLLBACK_WHAT.format(hosts=", ".join(hosts) or "every host")
        if self.engine_running:
            what += " The deployment running in this room is cancelled first."
        from ..screens.confirm import ConfirmRollback

        self.push_screen(ConfirmRollback(target, what), self._rollback_confirmed)

    def _rollback_confirmed(self, request: Any) -> None:
        if request is not None:
            self.run_worker(self._rollback(request), name="rollback-start", group="control")

    async def _rollback(self, request: Any) -> None:
        """Cancel this room's deployment, wait until it has stopped (its hosts recorded as
        interrupted, the lock kept for the rollback), then roll back. The rollback never
        starts beside a deployment still changing hosts, however long the stop takes."""
        worker = self.engine_worker
        if worker is not None and worker.is_running:
            what = f"{worker.name} {request.deployment_id}"
            self.notify(f"cancelling the {what}; the rollback starts once it has stopped")
            worker.cancel()
            waited = 0.0
            while True:
                try:
                    await asyncio.wait_for(asyncio.shield(worker.wait()), STOP_PATIENCE)
                    break
                except TimeoutError:
                    waited += STOP_PATIENCE
                    self.notify(
                        f"the {what} is still stopping after {waited:g} s;"
                        " the rollback waits for it",
                        severity="warning",
                    )
                except Exception:  # cancelled (WorkerCancelled) or failed: it has stopped
                    break
        self._start_run(
            "rollback",
            lambda: self.engine.rollback(
                request.deployment_id,
                request.reason,
                trigger={
                    "kind": "manual",
                    "from": "control room",
                    "operator": str(getattr(self.engine, "operator", "") or current_operator()),
                },
            ),
            target=request.deployment_id,
        )

    def action_pause_rollout(self) -> None:
        """Pause phase 8's gradual rollout (the step in force stays held and health-gated),
        or resume it; pressed twice so a stray key does neither."""
        if not self._allowed("pause_rollout"):
            return
        if self._arm("pause", "press p again to pause/resume the rollout"):
            paused = self.engine.pause_rollout()
            self.notify(
                "rollout paused: the step in force is held" if paused else "rollout resumed"
            )

    # -- flags ----------------------------------------------------------------------------

    def action_emergency_disable(self) -> None:
        if not self._allowed("emergency_disable"):
            return
        from ..screens.confirm import ReasonPrompt

        self.push_screen(
            ReasonPrompt(
                "Emergency-disable every flag?",
                "The kill switch forces every feature flag off for everyone, overrides"
                " included, at once; it is audited with your name and reason. Flags keep"
                " their configuration: `portal-ops feature restore` serves them again.",
            ),
            self._emergency_confirmed,
        )

    def _emergency_confirmed(self, reason: object) -> None:
        if not isinstance(reason, str) or not reason:
            return
        dep = self.state.deployment
        dep_id = dep.id if dep is not None and self.state.running else None
        self._flag_call(
            "emergency-disable", lambda s: s.emergency_disable(reason, current_operator(), dep_id)
        )

    def _flag_call(self, what: str, call: Callable[[Any], Any]) -> None:
        """Run a (blocking) flag-service call in a thread; its events reach the bus in order."""
        loop = asyncio.get_running_loop()
        bus = self.engine.bus if self.engine is not None else None

        def work() -> None:
            from backend.flags.service import FlagService

            base = self._service()
            service = FlagService(
                base.store.path,
                base.redis_url,
                base.keys.prefix,
                bus=_ThreadSafeBus(bus, loop) if bus is not None else None,  # type: ignore[arg-type]
                operator=current_operator(),
            )
            try:
                call(service)
            except Exception as exc:
                self.call_from_thread(self.notify, f"{what}: {exc}", severity="error", timeout=15)
            finally:
                service.close()
            self.call_from_thread(self._refresh_flags)

        self.run_worker(work, thread=True, group="flag-change", exit_on_error=False)

    def _selected_flag(self) -> str | None:
        screen = self.screen
        tables = list(screen.query(FlagTable))
        return tables[0].selected if tables else None

    def action_flag_step(self, direction: int) -> None:
        if not self._allowed("flag_step"):
            return
        name = self._selected_flag()
        flag = next((f for f in self.state.flags if f.name == name), None)
        if flag is None:
            self.notify("select a flag first (4 or f, then the arrow keys)", severity="warning")
            return
        name = flag.name  # the selected name, now known to be set
        steps = sorted(self.config.flags.rollout_steps) if self.config else [10, 50, 100]
        current = flag.percentage if flag.enabled else 0
        if direction > 0:
            target = next((s for s in steps if s > current), None)
        else:
            target = next((s for s in reversed(steps) if s < current), 0 if current else None)
        if target is None:
            edge = "fully on" if direction > 0 else "already off"
            self.notify(f"{flag.name} is {edge}", timeout=3)
            return
        label = f"{target}%" if target else "off"
        before = f"{current}%" if current else "off"
        key = "+" if direction > 0 else "-"
        if not self._arm(
            f"flag:{name}:{target}", f"press {key} again to step {name}: {before} -> {label}"
        ):
            return
        reason = f"control room: step {before} -> {label}"
        if target == 0:
            self._flag_call(name, lambda s: s.disable(name, reason=reason))
        else:
            self._flag_call(name, lambda s: s.set_percentage(name, target, reason=reason))
