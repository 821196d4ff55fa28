"""Phase 6's batches: switch a batch, stop spreading when a host fails, judge the batch on
what users get before the next one starts.

Stop spreading: the first host of a batch that fails its switch stops the batch's switches
not yet started. The hosts lost in phase 4 (code) and phase 6 together are counted against
``[rollout] max_fail_percentage``: over it, the phase fails (the switched hosts roll back);
within it, the failed hosts go back to their previous release, leave the rollout, and the
batch goes on.

Batch analysis: after a batch switches and before the next one starts, judge the batch's
hosts on what users would get from them, not only on their health URL: the health URL and
smoke pages requested from each host directly, and, with HAProxy in front, the real user
traffic of the switched hosts against the hosts not yet switched (error rate, response
time, share of the requests), from HAProxy's per-server ``show stat`` counters.

For ``[rollout] analysis_seconds`` the switched hosts are watched: their health URL and
the configured smoke pages (``[validation] smoke_pages``) requested from each host
directly (its ``base_url``). Any failure stops the rollout before the next batch; the
switched hosts are then rolled back by the failed phase. Each judgement is an event
(``step = "analysis"``) the control room shows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..events import Kind, Severity
from ..haproxy import HAProxyRuntime, RuntimeAPIError, server_of
from ..judge import Judgment, worse_than
from ..monitor.sources.haproxy import STATUS_COLUMNS, ServerDelta, StatCounters
from .run import PhaseFailed
from .traffic import backend_name, health_url

if TYPE_CHECKING:
    import httpx

    from .deploy import Deployment
    from .run import Run


async def switch_batches(run: Deployment, groups: list[list[str]]) -> None:
    """Switch ``groups`` one batch after the other, each judged before the next starts;
    raises PhaseFailed when a batch must not spread further."""
    await record_web_baseline(run)
    await record_traffic_baseline(run)
    for index, names in enumerate(groups, 1):
        label = f"batch {index}/{len(groups)}"
        run.note(f"{label}: {', '.join(names)}")
        pending = list(names)
        while pending:
            failed, skipped = await switch_until_failure(run, pending)
            if failed:
                await tolerate_or_stop(run, label, failed, skipped)
            pending = skipped
        live = [n for n in names if n in run.active]
        problems = await analyse_batch(run, live, index, len(groups))
        if problems:
            raise PhaseFailed(f"{label} failed its analysis: " + "; ".join(problems), live)


async def record_traffic_baseline(run: Deployment) -> None:
    """Before the first host switches, with HAProxy: each server's counters so far (all its
    requests and 5xx since HAProxy started, its recent mean response time), the reference
    for a batch with no host left on the old release to compare to (the last one)."""
    watch = traffic_watch(run) if run.config.rollout.analysis_seconds > 0 else None
    run.traffic_before = {}
    if watch is None or run.dry_run:
        return
    try:
        rows = await watch.api.show_stat()
    except RuntimeAPIError as exc:
        run.note(f"no traffic baseline: {exc}")
        return
    for row in rows:
        host = watch.servers.get((row.get("pxname", ""), row.get("svname", "")))
        if host is not None:
            run.traffic_before[host] = Traffic.so_far(row)


BASELINE_CHECKS = ("Q05", "Q06")  # p95 latency and error rate through the public URL


async def record_web_baseline(run: Deployment) -> None:
    """Before the first host switches: measure Q05 (p95) and Q06 (error rate) exactly as
    phase 7 will, on the old release, so phase 7 judges the new one against this machine's
    load rather than against absolute lines alone (``run.web_baseline``)."""
    vc = run.config.validation
    ids = [i for i in BASELINE_CHECKS if i not in vc.disabled]
    if not (vc.relative_to_baseline and ids and run.config.portal.public_url):
        return
    run.note(f"measure {' and '.join(ids)} on the live release: the baseline phase 7 compares to")
    if run.dry_run:
        return
    from .adapters.checks import measure_web

    try:
        report = await measure_web(run.config, ids)
    except Exception as exc:  # no baseline: phase 7 judges on the absolute lines
        run.note(f"no baseline for {', '.join(ids)}: {type(exc).__name__}: {exc}")
        return
    baseline = {
        c.id: float(c.value)
        for c in report.checks
        if c.id in ids
        and isinstance(c.value, int | float)
        and c.status.value in ("pass", "warn", "fail")
    }
    run.web_baseline = baseline
    run.emit(
        Kind.STEP_OUTPUT,
        host=None,
        step="baseline",
        stream="portal-ops",
        line="before the switch: "
        + (", ".join(f"{k} {v:g}" for k, v in baseline.items()) or "nothing measured"),
        web_baseline=baseline,
    )


async def switch_until_failure(
    run: Deployment, names: list[str]
) -> tuple[dict[str, str], list[str]]:
    """Switch ``names`` (``[rollout] concurrency`` at a time) until one fails: the switches
    not started by then are skipped. Returns (failed host -> why, skipped hosts)."""
    stop = asyncio.Event()
    skipped: list[str] = []

    async def guarded(name: str) -> None:
        if stop.is_set():
            skipped.append(name)
            return
        try:
            await run.switch_host(name)
        except BaseException:
            stop.set()
            raise

    errors = await run.on_hosts(names, guarded)
    failed = {n: str(e) for n, e in errors.items() if e}
    return failed, [n for n in names if n in skipped]


async def tolerate_or_stop(
    run: Deployment, label: str, failed: dict[str, str], skipped: list[str]
) -> None:
    """Count ``failed`` with the hosts lost in phase 4; over ``max_fail_percentage`` (or with
    nothing to go back to) raise PhaseFailed, else put them back on their previous release."""
    run.failed_hosts.update(failed)
    limit = run.config.rollout.max_fail_percentage
    percent = 100.0 * len(run.failed_hosts) / len(run.config.hosts)
    first = [n for n in failed if not run.previous.get(n)]
    left = [n for n in run.active if n not in failed]
    if percent > limit or first or not left:
        why = (
            f"{percent:.0f}% of hosts failed in code and switch (max_fail_percentage {limit:g})"
            if percent > limit
            else "no earlier release to go back to"
            if first
            else "no host left"
        )
        raise PhaseFailed(
            f"{label} failed on {', '.join(failed)}: {'; '.join(failed.values())}; {why}."
            f" Stopped: not switched: {', '.join(skipped) or 'none'}."
            f" Hosts already switched: {', '.join(run.switched) or 'none'}",
            list(failed),
        )
    for name, why in failed.items():
        previous = run.previous[name]
        assert previous is not None
        try:
            await run.cut_over(name, previous, before=run.release_id, strict=False, retry=True)
        except Exception as exc:
            raise PhaseFailed(
                f"{label}: {name} failed ({why}) and could not go back to {previous}: {exc}",
                [name],
            ) from None
        if name in run.switched:
            run.switched.remove(name)
        run.active.remove(name)
        run.set_host_state(name, "failed", release=previous, error=why)
    run.incident(
        Severity.WARNING,
        f"{label}: switch failed on {', '.join(failed)}; back on their previous release,"
        f" continuing without them ({percent:.0f}% of hosts failed in code and switch,"
        f" max_fail_percentage {limit:g})",
    )


async def probe_host(run: Run, name: str, client: httpx.AsyncClient) -> list[str]:
    """Problems seen on one host right now: health URL and smoke pages, requested directly."""
    import httpx  # here, not at the top: importing the engine must stay cheap (~0.1 s)

    host = run.host_config(name)
    problems: list[str] = []
    url = health_url(run.config, host)
    targets: list[tuple[str, int, str | None]] = [(url, 200, None)] if url else []
    if host.base_url:
        for page in run.config.validation.smoke_pages:
            if page.method != "GET" or page.key_env:
                continue  # pages needing a token or a body are judged by phase 7
            full = page.path if "://" in page.path else host.base_url.rstrip("/") + page.path
            targets.append((full, page.status, page.text))
    for target, status, text in targets:
        try:
            try:
                response = await client.get(target)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                # a kept-alive connection closed as it was reused: sent again, as browsers do
                response = await client.get(target)
        except httpx.HTTPError as exc:
            problems.append(f"{name}: {target} did not answer ({type(exc).__name__})")
            continue
        if response.status_code != status and not (status == 200 and response.is_success):
            problems.append(f"{name}: {target} answered {response.status_code}, expected {status}")
        elif text and text not in response.text:
            problems.append(f"{name}: {target} lacks {text!r}")
    return problems


@dataclass
class Traffic:
    """Real user requests to a group of hosts during the hold (HAProxy counters)."""

    requests: int = 0
    errors: int = 0
    rtime_total: float = 0.0  # response time (ms) x requests, for a weighted mean
    timed: int = 0

    @classmethod
    def so_far(cls, row: dict[str, str]) -> Traffic:
        """A server's counters since HAProxy started (``show stat`` row), its recent mean
        response time weighted by all its requests."""

        def number(key: str) -> int:
            value = row.get(key) or "0"
            return int(value) if value.isdigit() else 0

        out = cls()
        rtime = row.get("rtime") or ""
        out.add(
            ServerDelta(
                requests=sum(number(c) for c in STATUS_COLUMNS),
                errors=number("hrsp_5xx"),
                rtime_ms=float(rtime) if rtime.isdigit() else None,
            )
        )
        return out

    @classmethod
    def total(cls, parts: Iterable[Traffic]) -> Traffic:
        out = cls()
        for t in parts:
            out.requests += t.requests
            out.errors += t.errors
            out.rtime_total += t.rtime_total
            out.timed += t.timed
        return out

    def add(self, delta: ServerDelta) -> None:
        self.requests += delta.requests
        self.errors += delta.errors
        if delta.rtime_ms is not None and delta.requests:
            self.rtime_total += delta.rtime_ms * delta.requests
            self.timed += delta.requests

    @property
    def error_rate(self) -> float | None:
        return round(self.errors / self.requests, 4) if self.requests else None

    @property
    def rtime_ms(self) -> float | None:
        return round(self.rtime_total / self.timed, 1) if self.timed else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "rtime_ms": self.rtime_ms,
        }


class TrafficWatch:
    """HAProxy's per-server counters read during one hold, summed per host from the first
    read on. HAProxy keeps only a mean response time per server (``rtime``, its last 1024
    answers), so "p95" here is that mean, weighted by requests."""

    def __init__(self, api: HAProxyRuntime, servers: dict[tuple[str, str], str]) -> None:
        self.api = api
        self.servers = servers
        self.counters = StatCounters()
        self.hosts: dict[str, Traffic] = {}

    async def read(self) -> None:
        for host, delta in self.counters.update(await self.api.show_stat(), self.servers).items():
            self.hosts.setdefault(host, Traffic()).add(delta)

    def group(self, names: list[str]) -> Traffic:
        return Traffic.total(self.hosts[n] for n in names if n in self.hosts)


def traffic_watch(run: Run) -> TrafficWatch | None:
    """A watch on HAProxy's stats when HAProxy is the load balancer or ``[monitor.haproxy]``
    is enabled (its socket and backend default to the load balancer's); else None."""
    lb, stats = run.config.load_balancer, run.config.monitor.haproxy
    if not (lb.kind == "haproxy" or stats.enabled):
        return None
    socket = stats.socket or lb.socket
    if not socket:
        return None
    backend = stats.backend or lb.backend or ""
    servers = {server_of(backend_name(h), backend): h.name for h in run.config.hosts}
    return TrafficWatch(HAProxyRuntime(socket, timeout=5.0), servers)


def judge_traffic(
    run: Run, canary: Traffic, control: Traffic, share: float, before: Traffic | None = None
) -> list[Judgment]:
    """The switched hosts (``canary``) against the hosts not yet switched (``control``), or,
    with none left, against their own counters before the switch (``before``); ``share``:
    the canary's share of the servers. Too little traffic is inconclusive."""
    rollout, monitor = run.config.rollout, run.config.monitor
    minimum, factor = rollout.analysis_min_requests, rollout.analysis_factor
    if canary.requests + control.requests < minimum:
        return [
            Judgment(
                "traffic",
                "inconclusive",
                float(canary.requests + control.requests),
                None,
                float(minimum),
                f"{canary.requests + control.requests} requests < {minimum}",
            )
        ]
    out: list[Judgment] = []
    has_control = control.requests >= minimum
    if not has_control and before is not None and before.requests >= minimum:
        control, has_control = before, True  # the same hosts before the switch
    if control.requests + canary.requests and share < 1:
        got = canary.requests / (canary.requests + control.requests)
        want = share / factor
        bad = got < want
        out.append(
            Judgment(
                "throughput_share",
                "bad" if bad else "ok",
                round(got, 3),
                round(share, 3),
                round(want, 3),
                f"switched hosts got {got:.0%} of the requests, "
                f"{'under' if bad else 'at least'} {want:.0%} (their share {share:.0%} / {factor:g})",
            )
        )
    if canary.requests >= minimum:
        out.append(
            worse_than(
                "error_rate",
                canary.error_rate,
                control.error_rate if has_control else None,
                factor=factor,
                floor=monitor.error_rate_acceptable,
                ceiling=monitor.error_rate_acceptable,
            )
        )
        out.append(
            worse_than(
                "rtime",
                canary.rtime_ms,
                control.rtime_ms if has_control else None,
                factor=factor,
                floor=monitor.response_time_target_ms,
                ceiling=monitor.response_time_acceptable_ms,
                unit=" ms",
            )
        )
    else:
        out.append(
            Judgment(
                "error_rate",
                "inconclusive",
                float(canary.requests),
                None,
                float(minimum),
                f"{canary.requests} requests to the switched hosts < {minimum}",
            )
        )
    return out


async def analyse_batch(run: Run, batch: list[str], index: int, total: int) -> list[str]:
    """Hold ``analysis_seconds`` and judge ``batch``; the problems found (empty: go on).

    Every round is one ``step_output`` event with ``step = "analysis"`` (see
    docs/traffic.md): ``line`` says it in words, ``ok``, ``batch``, ``problems`` and, with
    HAProxy, ``traffic`` (the switched and not-yet-switched groups' counts and each
    judgment)."""
    seconds = run.config.rollout.analysis_seconds
    if seconds <= 0 or not batch:
        return []
    watch = traffic_watch(run)
    what = "health, smoke pages per host" + (
        ", real traffic from HAProxy (switched vs not yet switched)" if watch else ""
    )
    run.note(f"analyse batch {index}/{total} for {seconds:g}s: {what}")
    if run.dry_run:
        return []
    switched = [n for n in getattr(run, "switched", batch) if n in getattr(run, "active", batch)]
    others = [n for n in getattr(run, "active", batch) if n not in switched]
    share = len(switched) / max(1, len(switched) + len(others))
    if watch is not None:
        try:
            await watch.read()  # the counters' starting point
        except RuntimeAPIError as exc:
            return [f"traffic analysis: {exc}"]
    interval = min(1.0, seconds / 3)
    deadline = time.monotonic() + seconds
    problems: list[str] = []
    rounds = 0
    import httpx

    async with httpx.AsyncClient(timeout=min(5.0, seconds), follow_redirects=False) as client:
        while True:
            await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            rounds += 1
            found = await asyncio.gather(*(probe_host(run, n, client) for n in batch))
            problems = [p for host_problems in found for p in host_problems]
            traffic: dict[str, Any] | None = None
            if watch is not None:
                try:
                    await watch.read()
                except RuntimeAPIError as exc:
                    problems.append(f"traffic analysis: {exc}")
                else:
                    canary, control = watch.group(switched), watch.group(others)
                    before = getattr(run, "traffic_before", {})
                    reference = (
                        Traffic.total(before[n] for n in switched if n in before)
                        if not others and before
                        else None
                    )
                    judgments = judge_traffic(run, canary, control, share, reference)
                    traffic = {
                        "switched": {"hosts": switched, **canary.to_dict()},
                        "not_switched": {"hosts": others, **control.to_dict()},
                        "judgments": [j.to_dict() for j in judgments],
                    }
                    problems += [
                        f"real traffic: {j.metric} {j.why}" for j in judgments if j.verdict == "bad"
                    ]
            done = bool(problems) or time.monotonic() >= deadline
            summary = "; ".join(problems) if problems else "healthy"
            if traffic and not problems:
                summary += " ({} requests to switched hosts, {} to the others)".format(
                    traffic["switched"]["requests"], traffic["not_switched"]["requests"]
                )
            run.emit(
                Kind.STEP_OUTPUT,
                host=None,
                step="analysis",
                stream="portal-ops",
                line=f"batch {index}/{total} round {rounds}: {summary}",
                batch=batch,
                ok=not problems,
                problems=problems,
                traffic=traffic,
                final=done,
            )
            if done:
                return problems
