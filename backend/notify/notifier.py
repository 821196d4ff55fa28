"""The notifier: routes an event to its channels and delivers in the background.

``send`` renders once, schedules one task per routed channel and returns at once: the
engine never waits on Slack or a mail server. Each task retries with exponential backoff
(a server's Retry-After wins), bounds every attempt with a timeout, journals every attempt
as a ``notification`` event and, when it gives up, logs a warning incident. Nothing in
here raises to the caller; ``drain`` lets a CLI wait for deliveries before it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ..events import Event, EventBus, Kind, Severity
from .catalog import EVENTS, NotifySeverity, event_names
from .channels import Attempt, Channel, make_channel
from .config import NotifyConfig
from .render import Message, Renderer, render_message
from .secrets import Masker

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)


class NotifyError(Exception):
    """Notifications cannot work as configured: ``problems`` names each key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class DeliveryResult:
    """How one message fared on one channel, after all its attempts."""

    delivery: str
    channel: str
    kind: str
    event: str
    severity: str
    ok: bool
    attempts: int
    detail: str
    deployment_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Dispatch:
    """What one ``send`` scheduled; awaiting it is optional (the engine never does)."""

    event: str
    severity: NotifySeverity | None
    channels: list[str]
    tasks: list[asyncio.Task[DeliveryResult]]
    problem: str | None = None

    def done(self) -> bool:
        return all(t.done() for t in self.tasks)

    async def wait(self) -> list[DeliveryResult]:
        return list(await asyncio.gather(*self.tasks)) if self.tasks else []


@dataclass(frozen=True)
class Preview:
    """One routed message as a channel would send it (``--dry-run``)."""

    channel: str
    kind: str
    target: str
    ready: bool
    problem: str | None
    rendered: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Gate:
    """One attempt at a time on a channel, first come first served (asyncio.Lock is FIFO),
    at most one per ``interval`` (Slack: 1/s per webhook), paused for a Retry-After."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = asyncio.Lock()
        self._next = 0.0

    def hold(self, seconds: float) -> None:
        self._next = max(self._next, time.monotonic() + seconds)

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        async with self._lock:
            wait = self._next - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self.hold(self.interval)


class Notifier:
    """Renders, routes and delivers notifications; see the module docstring for the rules."""

    def __init__(
        self,
        config: NotifyConfig,
        bus: EventBus | None = None,
        *,
        env: Mapping[str, str] | None = None,
        base_dir: str | Path | None = None,
        target: str | None = None,
        strict: bool = False,
    ) -> None:
        self.config = config
        self.bus = bus
        self.target = target
        self.masker = Masker()
        env = os.environ if env is None else env
        templates = config.templates_dir
        if templates and base_dir and not Path(templates).expanduser().is_absolute():
            templates = str(Path(base_dir) / templates)
        self.renderer = Renderer(Path(templates).expanduser() if templates else None)
        self.channels: dict[str, Channel] = {
            name: make_channel(name, cfg, env, self.masker) for name, cfg in config.channels.items()
        }
        self._gates: dict[str, _Gate] = {}
        self._tasks: set[asyncio.Task[DeliveryResult]] = set()
        self._results: list[DeliveryResult] = []
        self._client: httpx.AsyncClient | None = None
        if strict and self.problems():
            raise NotifyError(self.problems())

    @classmethod
    def from_config(
        cls,
        config: Config,
        bus: EventBus | None = None,
        *,
        env: Mapping[str, str] | None = None,
        strict: bool = False,
    ) -> Notifier:
        """The usual way in: ``[notify]`` of a loaded portal-ops.toml, templates relative to it."""
        base = (
            Path(config.source).parent
            if config.source and not config.source.startswith("<")
            else None
        )
        return cls(
            config.notify, bus, env=env, base_dir=base, target=config.portal.name, strict=strict
        )

    # -- inspection -----------------------------------------------------------------------

    def problems(self) -> list[str]:
        """What stops channels from sending (missing secrets, templates dir): masked text."""
        found = self.renderer.problems()
        found += [
            self.masker(ch.problem)
            for ch in self.channels.values()
            if ch.problem and ch.config.enabled
        ]
        return found

    def severity(self, event: str, severity: str | NotifySeverity | None = None) -> NotifySeverity:
        return NotifySeverity(severity) if severity else self.config.severity_for(event)

    def route(self, event: str, severity: str | NotifySeverity | None = None) -> list[str]:
        """The channel names a message goes to (for the CLI and the control room)."""
        return self.config.route(event, self.severity(event, severity))

    def render(
        self,
        event: str,
        context: Mapping[str, Any] | None = None,
        severity: str | NotifySeverity | None = None,
    ) -> Message:
        ctx = dict(context or {})
        if self.target and not ctx.get("target"):
            ctx["target"] = self.target
        return render_message(
            self.renderer, event, self.severity(event, severity), ctx, self.config.links
        )

    def preview(
        self,
        event: str,
        context: Mapping[str, Any] | None = None,
        severity: str | NotifySeverity | None = None,
        channels: list[str] | None = None,
    ) -> tuple[Message, list[Preview]]:
        """Every routed message rendered as its channel would send it; nothing is sent."""
        message = self.render(event, context, severity)
        names = channels if channels is not None else self.route(event, message.severity)
        previews = []
        for name in names:
            ch = self.channels[name]
            rendered = ch.preview(message)
            previews.append(
                Preview(
                    channel=name,
                    kind=ch.kind,
                    target=self.masker(ch.target()),
                    ready=ch.problem is None,
                    problem=self.masker(ch.problem) if ch.problem else None,
                    rendered=rendered,
                )
            )
        return message, previews

    # -- sending --------------------------------------------------------------------------

    def send(
        self,
        event: str,
        context: Mapping[str, Any] | None = None,
        severity: str | NotifySeverity | None = None,
        *,
        channels: list[str] | None = None,
        deployment_id: str | None = None,
    ) -> Dispatch:
        """Schedule delivery and return at once. Never raises; problems become incidents."""
        context = dict(context or {})
        deployment_id = deployment_id or context.get("deployment_id")
        try:
            return self._send(event, context, severity, channels, deployment_id)
        except Exception as exc:  # the caller is a deployment or a rollback: never break it
            detail = self.masker(f"{type(exc).__name__}: {exc}")
            log.warning("notification %s not sent: %s", event, detail)
            self._incident(
                deployment_id, f"notification {event} was not sent: {detail}", {"event": event}
            )
            return Dispatch(event, None, [], [], problem=detail)

    def _send(
        self,
        event: str,
        context: dict[str, Any],
        severity: str | NotifySeverity | None,
        channels: list[str] | None,
        deployment_id: str | None,
    ) -> Dispatch:
        if event not in EVENTS:
            raise ValueError(f"unknown notification event {event!r}; allowed: {event_names()}")
        if not self.config.enabled:
            return Dispatch(event, None, [], [], problem="notifications are disabled")
        if channels is not None:
            unknown = [c for c in channels if c not in self.channels]
            if unknown:
                raise ValueError(
                    f"no such channel {unknown}; configured: {', '.join(self.channels)}"
                )
        message = self.render(event, context, severity)
        names = channels if channels is not None else self.route(event, message.severity)
        loop = asyncio.get_running_loop()
        tasks = []
        for name in names:
            delivery = uuid.uuid4().hex
            task = loop.create_task(
                self._deliver(self.channels[name], message, delivery, deployment_id),
                name=f"notify:{event}:{name}",
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            tasks.append(task)
        return Dispatch(event, message.severity, list(names), tasks)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.config.timeout), follow_redirects=False
            )
        return self._client

    def _gate(self, channel: Channel) -> _Gate:
        """One attempt at a time per channel, in send order ("rolling back" before "done")."""
        if channel.name not in self._gates:
            self._gates[channel.name] = _Gate(getattr(channel.config, "min_interval", 0.0))
        return self._gates[channel.name]

    def _delay(self, attempt: int, result: Attempt) -> float:
        if result.retry_after is not None:
            return min(result.retry_after, self.config.retry_after_max)
        return min(self.config.backoff * 2 ** (attempt - 1), self.config.backoff_max)

    async def _attempt(
        self, channel: Channel, message: Message, delivery: str, timeout: float
    ) -> Attempt:
        gate = self._gate(channel)
        async with gate():
            try:
                async with asyncio.timeout(timeout):
                    result = await channel.deliver(message, self._http(), delivery)
            except TimeoutError:
                result = Attempt(False, f"no answer within {timeout:g}s (timed out)")
            except Exception as exc:
                result = channel.classify(exc)
            if result.retry_after is not None:
                gate.hold(min(result.retry_after, self.config.retry_after_max))
        return result

    async def _deliver(
        self, channel: Channel, message: Message, delivery: str, deployment_id: str | None
    ) -> DeliveryResult:
        cfg = channel.config
        attempts = cfg.attempts or self.config.attempts
        timeout = cfg.timeout or self.config.timeout
        attempt = 0
        result = Attempt(False, "not attempted")

        def journal(result: Attempt, started: float, final: bool, retry_in: float | None) -> None:
            data: dict[str, Any] = {
                "channel": channel.name,
                "kind": channel.kind,
                "event": message.event,
                "severity": str(message.severity),
                "delivery": delivery,
                "attempt": attempt,
                "attempts": attempts,
                "ok": result.ok,
                "status": result.status,
                "detail": self.masker(result.detail),
                "seconds": round(time.monotonic() - started, 3),
                "final": final,
                "retry_in": None if retry_in is None else round(retry_in, 3),
                "target": self.masker(channel.target()),
            }
            if message.template_error:
                data["template_error"] = self.masker(message.template_error)
            self._emit(
                Event(kind=Kind.NOTIFICATION, deployment_id=deployment_id, run="notify", data=data)
            )

        try:
            if channel.problem:
                attempt = 1
                result = Attempt(False, channel.problem, retryable=False)
                journal(result, time.monotonic(), True, None)
            else:
                while True:
                    attempt += 1
                    started = time.monotonic()
                    result = await self._attempt(channel, message, delivery, timeout)
                    final = result.ok or not result.retryable or attempt >= attempts
                    delay = None if final else self._delay(attempt, result)
                    journal(result, started, final, delay)
                    if final:
                        break
                    await asyncio.sleep(delay or 0)
        except asyncio.CancelledError:
            result = Attempt(
                False, "gave up: still pending when the notifier was drained", retryable=False
            )
            journal(result, time.monotonic(), True, None)
        except Exception as exc:  # a bug of ours must still end as a journaled failure
            log.exception("notification delivery crashed")
            result = Attempt(False, f"internal error: {type(exc).__name__}: {exc}", retryable=False)
            journal(result, time.monotonic(), True, None)
        outcome = DeliveryResult(
            delivery=delivery,
            channel=channel.name,
            kind=channel.kind,
            event=message.event,
            severity=str(message.severity),
            ok=result.ok,
            attempts=attempt,
            detail=self.masker(result.detail),
            deployment_id=deployment_id,
        )
        self._results.append(outcome)
        if not outcome.ok:
            self._incident(
                deployment_id,
                f"notification {message.event} to {channel.name} ({channel.kind}) failed after"
                f" {attempt} attempt(s): {outcome.detail}",
                {
                    "channel": channel.name,
                    "event": message.event,
                    "delivery": delivery,
                    "attempts": attempt,
                },
            )
        return outcome

    # -- journal --------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        if self.bus is None:
            return
        try:
            self.bus.emit(event)
        except Exception:  # a journal that cannot write must not stop deliveries
            log.exception("could not journal %s", event.kind)

    def _incident(self, deployment_id: str | None, message: str, evidence: dict[str, Any]) -> None:
        self._emit(
            Event(
                kind=Kind.INCIDENT,
                deployment_id=deployment_id,
                run="notify",
                data={
                    "severity": str(Severity.WARNING),
                    "message": self.masker(message),
                    "evidence": evidence,
                },
            )
        )

    # -- waiting and closing --------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float | None = None) -> list[DeliveryResult]:
        """Wait up to ``timeout`` for pending deliveries; give up on the rest (journaled).

        Returns the results that finished since the previous drain.
        """
        timeout = self.config.drain_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while self._tasks:
            left = deadline - time.monotonic()
            pending = set(self._tasks)
            if left <= 0:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                break
            await asyncio.wait(pending, timeout=left)
        results, self._results = self._results, []
        return results

    async def aclose(self, timeout: float | None = None) -> list[DeliveryResult]:
        """Drain, then close the HTTP client."""
        results = await self.drain(timeout)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        return results

    def attach(self, bus: EventBus) -> Callable[[], None]:
        """Send the right notification at the right moments of the engine's event stream.

        Returns the unsubscribe function. Journals on ``bus`` too when the notifier has none.
        """
        from .bridge import EngineBridge

        if self.bus is None:
            self.bus = bus
        return bus.subscribe(EngineBridge(self))
