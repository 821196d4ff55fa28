"""The gradual rollout of phase 8: 10 % -> 50 % -> 100 %, each step held and gated on health.

A failed gate stops the rollout and takes the flag back to its last healthy step (the
state before the rollout if the first step failed). Percentages only go up, and the
bucketing keeps everyone who had the flag at 10 % in it at 50 %. The rollout also stops,
leaving the flag alone, when someone else changes it meanwhile or the emergency disable
is switched on: a human or the rollback is in charge then.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

from ..identity import Operator
from .gate import Gate
from .model import FlagError, validate_name, validate_percentage
from .service import FlagService

COMPLETED, STEPPED_BACK, NOT_STARTED, ABORTED = (
    "completed",
    "stepped-back",
    "not-started",
    "aborted",
)


def parse_steps(text: str | Sequence[int]) -> list[int]:
    """``"10,50,100"`` -> [10, 50, 100]: integers 1..100, strictly increasing."""
    raw = text.split(",") if isinstance(text, str) else list(text)
    if not raw or any(str(p).strip() == "" for p in raw):
        raise FlagError(f"bad steps {text!r}: give percentages like 10,50,100")
    steps = [validate_percentage(str(p).strip() if isinstance(p, str) else p) for p in raw]
    if any(p == 0 for p in steps):
        raise FlagError(f"bad steps {text!r}: each step is 1..100 (0 would turn nobody on)")
    if any(b <= a for a, b in pairwise(steps)):
        raise FlagError(f"bad steps {text!r}: percentages must strictly increase")
    return steps


def parse_duration(text: str | float, key: str = "duration") -> float:
    """``"5m"`` -> 300.0; also ``"30s"``, ``"1h30m"``, ``"250ms"``, or plain seconds
    (the one parser of :mod:`backend.durations`, raising a FlagError)."""
    from ..durations import DurationError
    from ..durations import parse_duration as parse

    try:
        return parse(text, key)
    except DurationError as exc:
        raise FlagError(str(exc)) from None


@dataclass
class StepRecord:
    percentage: int
    started_at: float
    finished_at: float | None = None
    healthy: bool | None = None
    checks: int = 0
    reason: str = ""


@dataclass
class StepUpdate:
    """What ``on_step`` receives: the flag, the step, what is happening, and why."""

    flag: str
    percentage: int
    status: str  # started | check | passed | failed | stepped-back | completed | aborted | skipped
    detail: str = ""
    held: float = 0.0  # seconds held so far at this step
    hold: float = 0.0


@dataclass
class RolloutResult:
    flag: str
    status: str  # completed | stepped-back | not-started | aborted
    reason: str
    steps: list[StepRecord] = field(default_factory=list)
    initial: tuple[bool, int] = (False, 0)  # (enabled, percentage) before the rollout
    final: tuple[bool, int] = (False, 0)
    healthy_percentage: int | None = None  # the last step that passed its hold
    failed_percentage: int | None = None
    started_at: float = 0.0
    finished_at: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == COMPLETED

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        out["initial"] = {"enabled": self.initial[0], "percentage": self.initial[1]}
        out["final"] = {"enabled": self.final[0], "percentage": self.final[1]}
        return out


StepCallback = Callable[[StepUpdate], Any]


class RolloutControl:
    """Pause and resume of a running rollout, from the control room.

    While paused, the current step keeps being held and health-checked (a step that turns
    unhealthy still steps back), but the next step does not start until resumed.
    """

    def __init__(self) -> None:
        self.paused = False

    def toggle(self) -> bool:
        """Pause a running rollout, or resume a paused one; returns the new paused state."""
        self.paused = not self.paused
        return self.paused


class GradualRollout:
    def __init__(
        self,
        service: FlagService,
        name: str,
        steps: Sequence[int] | str = (10, 50, 100),
        hold_seconds: float = 300.0,
        gate: Gate | None = None,
        on_step: StepCallback | None = None,
        *,
        check_interval: float | None = None,
        gate_timeout: float = 30.0,
        operator: Operator | None = None,
        reason: str = "",
        deployment_id: str | None = None,
        control: RolloutControl | None = None,
    ) -> None:
        """Validated here, so bad input fails before anything changes."""
        self.service = service
        self.name = validate_name(name)
        self.steps = parse_steps(steps)
        self.hold = parse_duration(hold_seconds)
        self.gate = gate
        self.on_step = on_step
        # check health several times per hold so a bad step is caught early
        self.interval = check_interval if check_interval else max(min(self.hold / 5, 10.0), 0.05)
        self.gate_timeout = gate_timeout
        self.operator = operator
        self.reason = reason
        self.deployment_id = deployment_id
        self.control = control or RolloutControl()

    async def run(self) -> RolloutResult:
        flag = self.service.get(self.name)  # UnknownFlagError before anything changes
        result = RolloutResult(
            self.name,
            NOT_STARTED,
            "",
            initial=(flag.enabled, flag.percentage),
            final=(flag.enabled, flag.percentage),
            started_at=time.time(),
        )
        if self.service.emergency().active:
            return await self._end(
                result, NOT_STARTED, "emergency disable is active; restore first"
            )
        ok, why = await self._check()
        if not ok:
            return await self._end(result, NOT_STARTED, f"unhealthy before the rollout: {why}")
        healthy = (flag.enabled, flag.percentage)
        for pct in self.steps:
            if flag.enabled and pct <= flag.percentage:
                await self._emit(pct, "skipped", f"already at {flag.percentage}%")
                continue
            change = self.service.set_percentage(
                self.name,
                pct,
                operator=self.operator,
                deployment_id=self.deployment_id,
                reason=self._why(f"rollout step {pct}%"),
            )
            expected = (True, pct)
            record = StepRecord(pct, time.time())
            result.steps.append(record)
            if change.published is False:
                # Apps never saw this step, so its health says nothing; going on would let
                # an ungated 100% go live the moment Redis is back. Put the store back.
                error = change.publication.error if change.publication else ""
                record.finished_at, record.healthy, record.reason = time.time(), False, error
                self.service.restore_state(
                    self.name,
                    healthy[0],
                    healthy[1],
                    operator=self.operator,
                    deployment_id=self.deployment_id,
                    reason=self._why(f"step {pct}% could not be published; rollout stopped"),
                )
                return await self._end(
                    result, ABORTED, f"step {pct}% was not published ({error}); flag put back"
                )
            await self._emit(pct, "started", f"serving {pct}%")
            verdict, why = await self._hold(pct, record, expected)
            record.finished_at, record.healthy, record.reason = (
                time.time(),
                verdict == "passed",
                why,
            )
            if verdict == "passed":
                healthy = expected
                result.healthy_percentage = pct
                await self._emit(pct, "passed", why)
                flag = self.service.get(self.name)
                continue
            if verdict == "aborted":
                return await self._end(result, ABORTED, why)
            result.failed_percentage = pct
            await self._emit(pct, "failed", why)
            self.service.restore_state(
                self.name,
                healthy[0],
                healthy[1],
                operator=self.operator,
                deployment_id=self.deployment_id,
                reason=self._why(f"health gate failed at {pct}%: {why}"),
            )
            back = f"{healthy[1]}%" if healthy[0] else "off"
            await self._emit(healthy[1], "stepped-back", f"back to {back}")
            return await self._end(result, STEPPED_BACK, f"health gate failed at {pct}%: {why}")
        return await self._end(result, COMPLETED, f"rolled out to {self.steps[-1]}%")

    async def _hold(
        self, pct: int, record: StepRecord, expected: tuple[bool, int]
    ) -> tuple[str, str]:
        """Hold the step, checking health every ``interval``; 'passed', 'failed' or 'aborted'."""
        start = time.monotonic()
        deadline = start + self.hold
        said_paused = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                await asyncio.sleep(min(self.interval, remaining))
            current = self.service.get(self.name)
            if self.service.emergency().active:
                return "aborted", "emergency disable switched on during the rollout; left as is"
            if (current.enabled, current.percentage) != expected:
                return "aborted", (
                    f"the flag was changed by someone else during the rollout (now "
                    f"{'on' if current.enabled else 'off'} at {current.percentage}%); left as is"
                )
            ok, why = await self._check()
            record.checks += 1
            held = time.monotonic() - start
            await self._emit(pct, "check", why, held)
            if not ok:
                return "failed", why
            if self.control.paused:  # hold this step (still gated) until resumed
                deadline = max(deadline, time.monotonic() + self.interval)
                if not said_paused:
                    await self._emit(pct, "paused", "paused by the operator; held and gated")
                said_paused = True
                continue
            if said_paused:
                await self._emit(pct, "resumed", "resumed by the operator")
                said_paused = False
            if time.monotonic() >= deadline:
                return "passed", f"held {held:.1f}s, healthy ({why})"

    async def _check(self) -> tuple[bool, str]:
        if self.gate is None:
            return True, "no health gate"
        try:
            ok, why = await asyncio.wait_for(self.gate(), self.gate_timeout)
            return bool(ok), str(why)
        except TimeoutError:
            return False, f"health gate gave no answer in {self.gate_timeout:.0f}s"
        except Exception as exc:  # a broken gate is an unhealthy gate
            return False, f"health gate raised {type(exc).__name__}: {exc}"

    async def _end(self, result: RolloutResult, status: str, reason: str) -> RolloutResult:
        result.status, result.reason, result.finished_at = status, reason, time.time()
        flag = self.service.store.get(self.name)
        if flag is not None:
            result.final = (flag.enabled, flag.percentage)
        final_pct = result.final[1] if result.final[0] else 0
        await self._emit(final_pct, {COMPLETED: "completed"}.get(status, status), reason)
        return result

    async def _emit(self, pct: int, status: str, detail: str, held: float = 0.0) -> None:
        if self.on_step is None:
            return
        update = StepUpdate(self.name, pct, status, detail, held, self.hold)
        try:
            out = self.on_step(update)
            if inspect.isawaitable(out):
                await out
        except Exception:  # a broken display never stops or breaks a rollout
            pass

    def _why(self, what: str) -> str:
        return f"{self.reason}: {what}" if self.reason else what
