"""The monitor: sources -> tumbling windows -> rules -> incidents and (once) a rollback.

Typical use by the engine (phase 9) and the CLI::

    monitor = Monitor(config, hosts, bus, deployment_id, on_trigger, auto_rollback=True)
    await monitor.record_baseline(60)   # before the switch (or load_baseline() later)
    ...switch...
    await monitor.start()
    report = await monitor.run(duration=900)   # or: ...; report = await monitor.stop()

Each closed window emits ``metric.sample`` events (every host, then the total), writes
the samples to SQLite, and feeds the rules. A rollback rule that fires emits a critical
``incident`` with the evidence; with auto-rollback on, ``on_trigger(TriggerInfo)`` is
awaited exactly once per monitor (latched), in its own task so windows keep closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from ..events import Event, EventBus, Kind, Severity
from ..haproxy import HAProxyRuntime, server_of
from ..paths import state_dir
from ..transport import Host
from .config import MonitorConfig
from .report import MonitorReport
from .rules import RuleBook, Transition, TriggerInfo
from .sources.accesslog import AccessLogFollower, make_parser
from .sources.haproxy import HAProxyStats
from .sources.probes import Prober
from .sources.prometheus import PrometheusScraper
from .store import SampleStore
from .window import TOTAL, Key, Tally, Windows, WindowStats, merge_tallies, summarize

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger(__name__)

OnTrigger = Callable[[TriggerInfo], Awaitable[Any]]


class _Source(Protocol):
    """A metric source: probes, a scrape, a log follower or HAProxy stats, run as a task."""

    async def run(self) -> None: ...


def fill_url(template: str, name: str, address: str) -> str:
    return template.replace("{name}", name).replace("{address}", address)


def _templated(url: str) -> bool:
    return "{address}" in url or "{name}" in url


class Monitor:
    """Follows a portal's health for one deployment (or none) and judges it per window."""

    def __init__(
        self,
        config: Config,
        hosts: Mapping[str, Host] | None = None,
        bus: EventBus | None = None,
        deployment_id: str | None = None,
        on_trigger: OnTrigger | None = None,
        auto_rollback: bool | None = None,
        *,
        store: SampleStore | None = None,
        report_dir: str | Path | None = None,
    ) -> None:
        self.config = config
        self.mcfg: MonitorConfig = config.monitor
        self.hosts: dict[str, Host] = dict(hosts or {})
        self.bus = bus
        self.deployment_id = deployment_id or time.strftime("monitor-%Y%m%d-%H%M%S")
        self.run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{id(self) & 0xFFFF:04x}"
        self.on_trigger = on_trigger
        self.auto_rollback = self.mcfg.auto_rollback if auto_rollback is None else auto_rollback
        self._store = store
        self.report_dir = Path(report_dir) if report_dir else None
        self.traffic = self._traffic_source()
        self.rulebook = RuleBook(self.mcfg)
        self.windows = Windows()
        self.host_names = list(self.hosts) or [h.name for h in config.hosts]
        self.baseline: dict[str, WindowStats] = {}
        self.history: list[WindowStats] = []  # the total of every monitored window
        self.latest: list[WindowStats] = []  # the last window, every host and the total
        self.incidents: list[dict[str, Any]] = []
        self.trigger: TriggerInfo | None = None
        self.triggered = asyncio.Event()
        self.rollback: dict[str, Any] | None = None
        self.started_at = 0.0
        self._aggregate: dict[Key, Tally] = {}
        self._baseline_tallies: dict[Key, Tally] = {}
        self._phase = "idle"
        self._opened = 0.0
        self._index = 0
        self._problems: set[str] = set()
        self._inconclusive_streak = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._loop_task: asyncio.Task[None] | None = None
        self._trigger_task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._report: MonitorReport | None = None
        self.followers: list[AccessLogFollower] = []
        self.probers: list[Prober] = []
        self.scrapers: list[PrometheusScraper] = []
        self.stat_readers: list[HAProxyStats] = []

    # -- configuration -----------------------------------------------------------------------

    def _traffic_source(self) -> str:
        m = self.mcfg
        wanted = m.traffic_source
        enabled = {
            "haproxy": m.haproxy.enabled,
            "access_log": m.access_log.enabled,
            "prometheus": m.prometheus.enabled,
            "probes": bool(self.probe_targets()),
        }
        if wanted != "auto":  # the config checked it is enabled; probes may lack a URL
            return wanted
        return next(
            (s for s in ("haproxy", "access_log", "prometheus", "probes") if enabled[s]), ""
        )

    def _address(self, name: str) -> str:
        for host in self.config.hosts:
            if host.name == name:
                return host.address
        return self.hosts[name].address if name in self.hosts else name

    def _names(self) -> list[str]:
        return list(self.hosts) or [h.name for h in self.config.hosts]

    def probe_targets(self) -> list[tuple[str, str | None]]:
        """(url, host) pairs: templated URLs once per host, plain ones unattributed."""
        p = self.mcfg.probes
        if not p.enabled:
            return []
        targets: list[tuple[str, str | None]] = []
        if p.urls:
            for url in p.urls:
                if _templated(url):
                    targets += [(fill_url(url, n, self._address(n)), n) for n in self._names()]
                else:
                    targets.append((url, None))
        elif p.use_health_url:
            by_name = {h.name: h for h in self.config.hosts}
            for name in self._names():
                hc = by_name.get(name)
                health = (hc.health_url if hc else None) or self.config.portal.health_url
                own = bool(hc and hc.health_url)  # a host's own URL speaks for that host
                if health and (_templated(health) or own):
                    targets.append((fill_url(health, name, self._address(name)), name))
                elif health and (health, None) not in targets:
                    targets.append((health, None))
        return targets

    def prometheus_targets(self) -> list[tuple[str, str | None]]:
        c = self.mcfg.prometheus
        if not c.enabled:
            return []
        targets: list[tuple[str, str | None]] = []
        for url in c.urls:
            if _templated(url):
                targets += [(fill_url(url, n, self._address(n)), n) for n in self._names()]
            else:
                targets.append((url, None))
        return targets

    def log_hosts(self) -> list[Host]:
        """The hosts whose access log is followed: those with one of the configured roles."""
        c = self.mcfg.access_log
        if not c.enabled:
            return []
        roles = {h.name: set(h.roles) for h in self.config.hosts}
        return [
            host
            for name, host in self.hosts.items()
            if name not in roles or roles[name] & set(c.roles)
        ]

    def haproxy_reader(self) -> HAProxyStats | None:
        """``show stat`` reader for the hosts (socket and backend default to the load
        balancer's); None when neither says where HAProxy is."""
        c, lb = self.mcfg.haproxy, self.config.load_balancer
        socket, backend = c.socket or lb.socket, c.backend or lb.backend or ""
        if not socket:
            return None
        servers = {
            server_of(h.backend_name or h.name, backend): h.name
            for h in self.config.hosts
            if h.name in self.host_names
        }
        api = HAProxyRuntime(socket, timeout=min(5.0, c.interval_seconds * 4))
        return HAProxyStats(
            api, servers, c.interval_seconds, self.windows, self._warn, self._recover
        )

    @property
    def store(self) -> SampleStore:
        if self._store is None:
            self._store = SampleStore(state_dir(self.config.state.dir) / "journal.db")
        return self._store

    # -- events and incidents -----------------------------------------------------------------

    def _emit(self, kind: Kind, host: str | None, data: dict[str, Any]) -> None:
        if self.bus is None:
            return
        self.bus.emit(
            Event(
                kind=kind,
                deployment_id=self.deployment_id,
                run="monitor",
                phase=self._phase if self._phase != "idle" else "monitor",
                host=host,
                data=data,
            )
        )

    def incident(
        self,
        severity: Severity,
        message: str,
        *,
        host: str | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> None:
        record = {
            "ts": time.time(),
            "severity": str(severity),
            "message": message,
            "host": host,
            "evidence": evidence or {},
        }
        self.incidents.append(record)
        self._emit(
            Kind.INCIDENT,
            host,
            {"severity": str(severity), "message": message, "evidence": evidence or {},
             "source": "monitor"},
        )  # fmt: skip

    def _warn(self, key: str, host: str | None, message: str) -> None:
        """A source problem: one warning per problem until it recovers."""
        if key in self._problems:
            return
        self._problems.add(key)
        self.incident(Severity.WARNING, message, host=host)

    def _recover(self, key: str) -> None:
        if key in self._problems:
            self._problems.discard(key)
            self.incident(Severity.INFO, f"recovered: {key}")

    # -- sources ------------------------------------------------------------------------------

    async def _start_sources(self) -> None:
        if self._tasks:
            return
        self._client = httpx.AsyncClient(
            verify=self.mcfg.probes.verify_tls and self.mcfg.prometheus.verify_tls,
            follow_redirects=False,
            headers={"user-agent": "portal-ops-monitor"},
        )
        as_traffic = self.traffic == "probes"
        for url, host in self.probe_targets():
            prober = Prober(
                url, host, self.mcfg.probes, self.windows, self._client,
                self._warn, self._recover, as_traffic=as_traffic,
            )  # fmt: skip
            self.probers.append(prober)
        for url, host in self.prometheus_targets():
            scraper = PrometheusScraper(
                url, host, self.mcfg.prometheus, self.windows, self._client,
                self._warn, self._recover,
            )  # fmt: skip
            self.scrapers.append(scraper)
        if self.mcfg.haproxy.enabled:
            reader = self.haproxy_reader()
            if reader is None:
                self._warn("haproxy", None, "monitor.haproxy is enabled but has no socket/backend")
            else:
                self.stat_readers.append(reader)
        if self.mcfg.access_log.enabled:
            parser = make_parser(self.mcfg.access_log)
            hosts = self.log_hosts()
            if not hosts:
                self._warn("access_log", None, "access_log is enabled but no host to follow")
            for log_host in hosts:
                path = self.mcfg.access_log.path.replace("{name}", log_host.name)
                follower = AccessLogFollower(
                    log_host, path, parser, self.windows, self._warn, self._recover
                )
                self.followers.append(follower)
        if not self.traffic:
            self._warn("sources", None, "no metric source configured: nothing to judge")
        elif self.traffic == "probes" and not self.probe_targets():
            self._warn("probes", None, "probes are the traffic source but have no URL")
        runners: list[_Source] = [
            *self.probers,
            *self.scrapers,
            *self.followers,
            *self.stat_readers,
        ]
        self._tasks = [asyncio.create_task(r.run(), name=f"monitor-{r!r}") for r in runners]

    async def _stop_sources(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- windows ------------------------------------------------------------------------------

    async def _window_loop(self, phase: str, count: int | None, width: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        width = width or self.mcfg.window_seconds
        self._phase = phase
        self._index = 0
        self.windows.rotate()  # what came before this phase is not part of it
        self._opened = time.time()
        t0 = loop.time()
        while count is None or self._index < count:
            await asyncio.sleep(max(0.0, t0 + (self._index + 1) * width - loop.time()))
            self._index += 1
            closed = self.windows.rotate()
            start, self._opened = self._opened, time.time()
            self._close_window(phase, closed, start, self._opened)

    def _close_window(self, phase: str, closed: dict[Key, Tally], start: float, end: float) -> None:
        samples = summarize(closed, self.host_names, self.traffic, self._index, start, end)
        transitions: list[Transition] = []
        if phase == "monitor":
            transitions = self.rulebook.judge(samples, self.baseline, self.deployment_id)
            merge_tallies(self._aggregate, closed)
            self.history.append(samples[-1])
        else:
            for s in samples:
                s.verdict = self.rulebook.plain_verdict(s)
            if phase != "live":
                merge_tallies(self._baseline_tallies, closed)
        self.latest = samples
        if phase != "live":  # a live view is shown, not kept: the journal stays small
            self._store_samples(phase, samples)
        for s in samples:
            self._emit(
                Kind.METRIC_SAMPLE, None if s.host == TOTAL else s.host, _sample_data(s, phase)
            )
        if phase == "monitor":
            self._watch_inputs(samples)
            self._handle(transitions)

    def _store_samples(self, phase: str, samples: list[WindowStats], kind: str = "window") -> None:
        try:
            self.store.add(self.deployment_id, self.run_id, phase, samples, kind=kind)
        except Exception as exc:  # a full disk must not stop the watch or a rollback
            log.exception("cannot store monitor samples")
            self._warn("store", None, f"cannot store samples: {exc}")

    def _watch_inputs(self, samples: list[WindowStats]) -> None:
        """Warn a human about what rules cannot see: no traffic, an unreadable log."""
        total = samples[-1]
        k = self.mcfg.inconclusive_alert_windows
        if total.requests < max(self.mcfg.min_requests, 1):
            self._inconclusive_streak += 1
            if k and self._inconclusive_streak == k:
                self.incident(
                    Severity.WARNING,
                    f"{k} windows in a row with fewer than {self.mcfg.min_requests} requests:"
                    " traffic rules cannot judge (INCONCLUSIVE, no automatic rollback on"
                    " them); watch by hand",
                    evidence={"windows": k, "requests": total.requests},
                )
        else:
            self._inconclusive_streak = 0
        for s in samples:
            if s.host == TOTAL:
                continue
            key = f"format:{s.host}"
            if s.unparsed >= 5 and s.unparsed > s.requests:
                self._warn(
                    key, s.host,
                    f"{s.unparsed} of {s.unparsed + s.requests} access-log lines on {s.host}"
                    " do not match the configured format ([monitor.access_log] format/regex)",
                )  # fmt: skip
            elif s.requests and s.unparsed * 10 < s.requests:
                self._recover(key)

    def _handle(self, transitions: list[Transition]) -> None:
        """One incident per rule per window (the total and hosts firing together)."""
        by_rule: dict[tuple[str, str], list[TriggerInfo]] = {}
        for t in transitions:
            by_rule.setdefault((t.kind, t.info.rule), []).append(t.info)
        for (kind, _rule), infos in by_rule.items():
            infos.sort(key=lambda i: i.host != TOTAL)  # the total first
            info = infos[0]
            scopes = [i.host for i in infos]
            evidence = {**info.to_dict(), "scopes": scopes}
            if kind == "cleared":
                self.incident(
                    Severity.INFO,
                    f"rule {info.rule} cleared on {', '.join(scopes)} after"
                    f" {self.mcfg.clear_windows} good windows",
                    evidence={"rule": info.rule, "scopes": scopes},
                )
                continue
            if info.action == "warn":
                self.incident(Severity.WARNING, info.reason, host=_host(info), evidence=evidence)
                continue
            self._fire(info, evidence)

    def _fire(self, info: TriggerInfo, evidence: dict[str, Any]) -> None:
        host = _host(info)
        if self.trigger is not None:
            self.incident(
                Severity.CRITICAL,
                f"{info.reason} (rollback already triggered by rule {self.trigger.rule})",
                host=host, evidence=evidence,
            )  # fmt: skip
            return
        self.trigger = info
        self.triggered.set()
        if not self.auto_rollback:
            self.incident(
                Severity.CRITICAL,
                f"{info.reason}. Auto-rollback is off: roll back with"
                f" `portal-ops rollback {self.deployment_id}`",
                host=host, evidence=evidence,
            )  # fmt: skip
            return
        if self.on_trigger is None:
            self.incident(
                Severity.CRITICAL,
                f"{info.reason}. Auto-rollback is on but unavailable (no rollback callback):"
                f" roll back with `portal-ops rollback {self.deployment_id}`",
                host=host, evidence=evidence,
            )  # fmt: skip
            return
        self.incident(
            Severity.CRITICAL, f"{info.reason}; starting the automatic rollback",
            host=host, evidence=evidence,
        )  # fmt: skip
        self.rollback = {"started": True, "at": time.time(), "ok": None}
        self._trigger_task = asyncio.create_task(self._run_trigger(info), name="monitor-trigger")

    async def _run_trigger(self, info: TriggerInfo) -> None:
        assert self.on_trigger is not None
        try:
            result = await self.on_trigger(info)
        except Exception as exc:
            log.exception("on_trigger failed")
            assert self.rollback is not None
            self.rollback.update(ok=False, error=str(exc))
            self.incident(
                Severity.ERROR,
                f"the automatic rollback could not run: {exc}. Roll back with"
                f" `portal-ops rollback {self.deployment_id}`",
            )
            return
        assert self.rollback is not None
        self.rollback.update(ok=True, finished_at=time.time())
        outcome = getattr(result, "outcome", None)
        if outcome is not None:
            self.rollback["outcome"] = outcome

    # -- public API ---------------------------------------------------------------------------

    async def record_baseline(self, seconds: float | None = None) -> dict[str, WindowStats]:
        """Watch ``seconds`` (default ``baseline_seconds``) before the switch; the rules compare
        later windows with it. Sources keep running afterwards, ready for :meth:`start`."""
        seconds = self.mcfg.baseline_seconds if seconds is None else seconds
        width = self.mcfg.window_seconds
        await self._start_sources()
        self._baseline_tallies = {}
        started = time.time()
        await self._window_loop("baseline", max(1, round(seconds / width)))
        ended = time.time()
        stats = summarize(self._baseline_tallies, self.host_names, self.traffic, 0, started, ended)
        for s in stats:
            s.verdict = self.rulebook.plain_verdict(s)
        self.baseline = {s.host: s for s in stats}
        self._store_samples("baseline", stats, kind="aggregate")
        self._emit(
            Kind.METRIC_SAMPLE, None, {**_sample_data(stats[-1], "baseline"), "aggregate": True}
        )
        self._phase = "idle"
        return self.baseline

    def load_baseline(self, deployment_id: str | None = None) -> bool:
        """The baseline recorded earlier for this deployment (by the engine), if any."""
        self.baseline = self.store.baseline(deployment_id or self.deployment_id)
        return bool(self.baseline)

    async def start(self) -> None:
        """Open the monitoring window (after the switch); rules judge from now on."""
        if self._loop_task is not None:
            return
        await self._start_sources()
        self.started_at = time.time()
        self._loop_task = asyncio.create_task(self._window_loop("monitor", None))

    async def follow(self, window_seconds: float | None = None) -> None:
        """Sample without judging (the control room's live health, idle or not): a window
        closes every ``window_seconds`` and emits ``metric.sample`` (phase ``live``), nothing
        is stored, no rule fires; :meth:`stop` ends it."""
        if self._loop_task is not None:
            return
        await self._start_sources()
        self._loop_task = asyncio.create_task(self._window_loop("live", None, window_seconds))

    async def run(
        self,
        duration: float | None = None,
        *,
        until: asyncio.Event | None = None,
        stop_on_trigger: bool = False,
    ) -> MonitorReport:
        """Start (if needed), watch for ``duration`` seconds (or until ``until`` is set, or
        the trigger's rollback has run with ``stop_on_trigger``), then stop."""
        if duration is not None and not isinstance(duration, int | float):
            raise TypeError(f"duration must be seconds, not {type(duration).__name__}")
        await self.start()
        waits: dict[asyncio.Task[Any], str] = {}
        if duration is not None:
            waits[asyncio.create_task(asyncio.sleep(duration))] = "duration"
        if until is not None:
            waits[asyncio.create_task(until.wait())] = "interrupted"
        if stop_on_trigger:
            waits[asyncio.create_task(self._triggered_and_done())] = "trigger"
        if self._loop_task is not None:
            waits[self._loop_task] = "error"  # the loop only ends by failing
        done, pending = await asyncio.wait(list(waits), return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            if task is not self._loop_task:
                task.cancel()
        reason = next((waits[t] for t in done), "stop")
        return await self.stop(reason)

    async def _triggered_and_done(self) -> None:
        await self.triggered.wait()
        if self._trigger_task is not None:
            await asyncio.shield(self._trigger_task)

    async def stop(self, reason: str = "stop") -> MonitorReport:
        """Stop everything, wait for a started rollback callback, write the report."""
        if self._report is not None:
            return self._report
        if self._loop_task is not None:
            if self._loop_task.done() and not self._loop_task.cancelled():
                failure = self._loop_task.exception()
                if failure is not None:
                    log.error("monitor window loop failed", exc_info=failure)
                    self.incident(Severity.ERROR, f"the monitor stopped on an error: {failure}")
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loop_task
        partial = self.windows.rotate()
        if self._phase == "monitor":
            merge_tallies(self._aggregate, partial)  # in the report, never judged by rules
        await self._stop_sources()
        trigger_task = self._trigger_task
        if trigger_task is not None and trigger_task is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(trigger_task)
        ended = time.time()
        started = self.started_at or ended
        after = summarize(self._aggregate, self.host_names, self.traffic, 0, started, ended)
        for s in after:
            s.verdict = self.rulebook.plain_verdict(s)
        if self._phase == "monitor":
            self._store_samples("monitor", after, kind="aggregate")
        self._phase = "idle"
        report = MonitorReport.build(
            config=self.mcfg,
            deployment_id=self.deployment_id,
            run_id=self.run_id,
            started_at=started,
            ended_at=ended,
            windows=self.history,
            after={s.host: s for s in after},
            baseline=self.baseline,
            stopped_by=reason,
            auto_rollback=self.auto_rollback,
            source=self.traffic,
            incidents=self.incidents,
            trigger=self.trigger.to_dict() if self.trigger else None,
            rollback=self.rollback,
        )
        if self.started_at:  # a baseline alone (the deployment failed before) is no report
            directory = self.report_dir or state_dir(self.config.state.dir) / "reports"
            try:
                report.write(directory)
            except OSError as exc:
                log.warning("cannot write the monitoring report: %s", exc)
        self._report = report
        return report

    async def __aenter__(self) -> Monitor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop("stop" if exc[0] is None else "error")


def _host(info: TriggerInfo) -> str | None:
    return None if info.host == TOTAL else info.host


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _sample_data(s: WindowStats, phase: str) -> dict[str, Any]:
    """The ``metric.sample`` payload: latencies in ms, rates as fractions."""
    return {
        "host": s.host,
        "scope": "total" if s.host == TOTAL else "host",
        "phase": phase,
        "window": s.index,
        "start": s.start,
        "end": s.end,
        "p50": _round(s.p50),
        "p95": _round(s.p95),
        "p99": _round(s.p99),
        "error_rate": _round(s.error_rate, 6),
        "rps": _round(s.rps),
        "requests": s.requests,
        "errors": s.errors,
        "client_errors": s.client_errors,
        "uptime": _round(s.uptime, 6),
        "probes": s.probes,
        "probe_failures": s.probe_failures,
        "verdict": s.verdict,
        "bad_rules": s.bad_rules,
        "source": s.source,
        "secondary": s.secondary,
    }
