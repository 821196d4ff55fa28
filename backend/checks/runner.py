"""Running a validation phase: every check at once, each bounded in time, each row an
event as it finishes, then the score, the decision and the stored report."""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..context import RunContext
from ..events import Event, EventBus, Kind
from ..lazy import lazy_module
from ..paths import state_dir
from ..transport import Host, TransportError, connect_all, make_host
from ..transport.local import LocalHost
from .context import LOCAL, Context, ssl_context
from .model import REGISTRY, CheckResult, CheckSpec, Outcome, Phase, Status, decide, errored
from .report import ValidationReport, store

if TYPE_CHECKING:
    import httpx
else:  # loaded on first use: checks that make no request never pay for it
    httpx = lazy_module("httpx")

# one module per category; importing them registers their checks
_CATEGORY_MODULES = (
    "access",
    "quality",
    "resources",
    "services",
    "tls",
    "apis",
    "release",
    "web",
    "logs",
    "flagsync",
)
USER_AGENT = "portal-ops-validate/1"
log = logging.getLogger(__name__)


def load_checks() -> dict[str, CheckSpec]:
    for name in _CATEGORY_MODULES:
        importlib.import_module(f"{__package__}.{name}")
    return REGISTRY


def specs_for(phase: Phase, only: Iterable[str] | None = None) -> list[CheckSpec]:
    """The checks of a phase in id order, optionally only some of them."""
    registry = load_checks()
    wanted = {i.upper() for i in only} if only is not None else None
    return sorted(
        (s for s in registry.values() if s.phase == phase and (wanted is None or s.id in wanted)),
        key=lambda s: s.id,
    )


async def run_validation(
    config: Config,
    phase: Phase,
    *,
    hosts: dict[str, Host] | None = None,
    deployment_id: str | None = None,
    bus: EventBus | None = None,
    release: str | None = None,
    revision: str | None = None,
    since: float | None = None,
    baseline: dict[str, float] | None = None,
    only: Iterable[str] | None = None,
    store_report: bool = True,
    locked: Iterable[str] = (),
) -> ValidationReport:
    """Run the ``pre`` (P01..P15) or ``post`` (Q01..Q18) checks and decide go / no-go.

    ``hosts``: the engine's connected hosts, reused and left open; without them every
    configured host is connected here and closed at the end. ``release``/``revision`` are
    what post checks expect to find live; ``since`` (epoch seconds) is the switch time
    from which new log errors count; ``baseline``: Q05/Q06's values before the switch,
    which they are then judged against. ``locked``: the hosts whose deploy lock the
    deployment took in this very phase (P15 reads no lock there). The report is stored in
    the state directory.
    """
    if phase not in ("pre", "post"):
        raise ValueError(f"phase must be 'pre' or 'post', not {phase!r}")
    specs = specs_for(phase, only)
    unknown = sorted(set(i.upper() for i in only or ()) - {s.id for s in specs})
    if unknown:
        raise ValueError(f"unknown {phase} check id(s): {', '.join(unknown)}")
    started = time.time()
    own = hosts is None
    unreachable: dict[str, TransportError] = {}
    if hosts is None:
        made = {h.name: make_host(config, h) for h in config.hosts}
        unreachable = await connect_all(list(made.values()))
        hosts = {n: h for n, h in made.items() if n not in unreachable}
        to_close = list(made.values())
    else:
        to_close = []
    vc = config.validation

    def http_client() -> httpx.AsyncClient:
        return httpx.AsyncClient(
            verify=ssl_context(config),
            timeout=vc.http_timeout,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )

    ctx = Context(
        config=config,
        phase=phase,
        hosts=dict(hosts),
        unreachable=unreachable,
        local=LocalHost(LOCAL, "localhost", command_timeout=vc.timeout),
        http_client=http_client,
        journal_path=state_dir(config.state.dir) / "journal.db",
        deployment_id=deployment_id,
        release=release,
        revision=revision,
        since=since,
        baseline=baseline,
        locked=frozenset(locked),
    )
    try:
        groups = await asyncio.gather(*(_run_check(ctx, spec, bus) for spec in specs))
    finally:
        await ctx.close()
        if own:
            await asyncio.gather(*(h.close() for h in to_close), return_exceptions=True)
    rows = [row for group in groups for row in group]
    total, decision, reasons = decide(rows, vc.pass_score)
    report = ValidationReport(
        phase=phase,
        deployment_id=deployment_id,
        started_at=started,
        finished_at=time.time(),
        score=total,
        decision=decision,
        reasons=[ctx.redact(r) for r in reasons],
        checks=rows,
        pass_score=vc.pass_score,
        portal=config.portal.name,
        release=release,
        revision=revision,
        hosts=ctx.host_names,
    )
    if store_report:
        try:
            store(report, config.state.dir)
        except OSError as exc:  # the decision stands; say where the report is missing
            log.warning("validation report not stored: %s", exc)
            report.reasons.append(f"report not stored: {exc.strerror or exc}")
    if bus is not None:
        bus.emit(
            Event(
                kind=Kind.CHECK_SUMMARY,
                deployment_id=deployment_id,
                run="validate",
                phase=f"validate-{phase}",
                data=report.summary_data(),
            )
        )
    return report


async def validate_run(
    run: RunContext,
    phase: Phase,
    *,
    release: str | None = None,
    revision: str | None = None,
    since: float | None = None,
    only: Iterable[str] | None = None,
    store_report: bool = True,
    publish: bool = True,
    baseline: dict[str, float] | None = None,
    locked: Iterable[str] = (),
) -> ValidationReport:
    """The checks as a step of a run: on the run's hosts, under its deployment id, each
    result published on its bus. ``publish=False`` keeps them off the bus (a rollback's
    own verification reports its rows as its step lines, not as a second check list)."""
    return await run_validation(
        run.config,
        phase,
        hosts=dict(run.hosts),
        deployment_id=run.deployment_id,
        bus=run.bus if publish else None,
        release=release,
        revision=revision,
        since=since,
        only=only,
        store_report=store_report,
        baseline=baseline,
        locked=locked,
    )


async def _run_check(ctx: Context, spec: CheckSpec, bus: EventBus | None) -> list[CheckResult]:
    vc = ctx.vc
    weight = vc.weights.get(spec.id, spec.weight)
    critical = vc.critical.get(spec.id, spec.critical)
    started = time.perf_counter()
    disabled = spec.id in vc.disabled
    if disabled:
        outcomes = [Outcome(Status.SKIPPED, f"disabled: {vc.disabled[spec.id]}")]
    else:
        try:
            # per-host work is bounded by ctx.timeout inside; this catches the rest
            outcomes = await asyncio.wait_for(spec.func(ctx), ctx.timeout + 5)
        except TimeoutError:
            outcomes = [errored(f"no result within {ctx.timeout + 5:g}s")]
        except Exception as exc:  # a bug in one check must not hide the others
            outcomes = [errored(f"could not measure: {type(exc).__name__}: {exc}")]
        if not outcomes:
            outcomes = [errored("the check produced no result")]
    elapsed = (time.perf_counter() - started) * 1000
    rows = []
    for outcome in outcomes:
        row = CheckResult(
            id=spec.id,
            title=spec.title,
            category=spec.category,
            host=outcome.host,
            status=outcome.status,
            message=ctx.redact(outcome.message),
            value=_redact_any(ctx, outcome.value),
            unit=outcome.unit,
            threshold=outcome.threshold,
            weight=weight,
            critical=critical,
            duration_ms=outcome.duration_ms if outcome.duration_ms is not None else elapsed,
            disabled=disabled,
            meta=_redact_any(ctx, outcome.meta),
        )
        rows.append(row)
        if bus is not None:
            bus.emit(
                Event(
                    kind=Kind.CHECK_RESULT,
                    deployment_id=ctx.deployment_id,
                    run="validate",
                    phase=f"validate-{ctx.phase}",
                    host=row.host,
                    data=row.to_dict(),
                )
            )
    return rows


def _redact_any(ctx: Context, value: Any) -> Any:
    if isinstance(value, str):
        return ctx.redact(value)
    if isinstance(value, dict):
        return {k: _redact_any(ctx, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_any(ctx, v) for v in value]
    return value
