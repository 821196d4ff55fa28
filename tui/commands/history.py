"""``portal-ops history`` and ``portal-ops show``: past deployments from the journal."""

from __future__ import annotations

import time
from typing import Any

import click

from backend.events import Kind
from backend.journal import Journal

from .common import (
    checked_id,
    config_option,
    fail,
    json_option,
    load_or_exit,
    open_journal,
    print_json,
)
from .completion import complete_deployment_ids


def _rows_from_hosts(config: Any, limit: int) -> list[dict[str, Any]]:
    """The deployments every host records (.portal-ops/deployments), merged, newest first."""
    import asyncio

    from backend.engine.hoststate import merge
    from backend.engine.rollback import survey
    from backend.transport import make_host

    async def read() -> list[dict[str, Any]]:
        hosts = {h.name: make_host(config, h) for h in config.hosts}
        try:
            views = merge(await survey(config, hosts))
        finally:
            await asyncio.gather(*(h.close() for h in hosts.values()), return_exceptions=True)
        ordered = sorted(views.values(), key=lambda v: v.started_at, reverse=True)[:limit]
        return [
            {
                "id": v.deployment_id,
                "started_at": v.started_at,
                "finished_at": v.updated_at if not v.unfinished else None,
                "outcome": v.status,
                "status": v.status,
                "release": v.release,
                "revision": v.revision,
                "operator": {"user": v.operator, "via": v.machine},
                "live_on": v.live_on,
                "phase": v.phase,
                "from_hosts": True,
            }
            for v in ordered
        ]

    try:
        return asyncio.run(read())
    except Exception as exc:  # hosts unreachable: say so, show what the journal has
        click.echo(f"portal-ops: could not read the hosts: {exc}", err=True)
        return []


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _operator(row: dict[str, Any]) -> str:
    op = row.get("operator") or {}
    return op.get("user", "?") + (f" ({op['via']})" if op.get("via") else "")


@click.command()
@config_option
@click.option(
    "-n", "--limit", default=20, show_default=True, type=click.IntRange(1), help="How many."
)
@click.option("--all-targets", is_flag=True, help="Include other portals sharing this state dir.")
@click.option("--all", "with_plans", is_flag=True, help="Include dry runs (plans).")
@click.option(
    "--from-hosts",
    is_flag=True,
    help="Read the deployments the hosts record (any machine's), not this machine's journal.",
)
@json_option
def history(
    config_path: str | None,
    limit: int,
    all_targets: bool,
    with_plans: bool,
    from_hosts: bool,
    as_json: bool,
) -> None:
    """List past deployments, newest first (dry runs are plans: only with --all)."""
    config = load_or_exit(config_path)
    journal = open_journal(config)
    rows = journal.list_deployments(
        limit=limit * (1 if with_plans else 5), target=None if all_targets else config.portal.name
    )
    rows = [r for r in rows if with_plans or not r.get("dry_run")][:limit]
    if from_hosts or not rows:
        rows = _rows_from_hosts(config, limit) or rows
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("No deployments yet.")
        return
    click.echo(
        f"{'DEPLOYMENT':<26} {'STARTED':<20} {'OUTCOME':<12} {'SECONDS':>8}  {'RELEASE':<22} OPERATOR"
    )
    for row in rows:
        seconds = (row.get("finished_at") or 0) - (row.get("started_at") or 0)
        outcome = row.get("outcome") or row.get("status")
        click.echo(
            f"{row['id']:<26} {_when(row.get('started_at')):<20} {outcome:<12}"
            f" {seconds if seconds > 0 else 0:8.1f}  {row.get('release', ''):<22} {_operator(row)}"
        )


@click.command()
@config_option
@click.argument("deployment_id", callback=checked_id, shell_complete=complete_deployment_ids)
@click.option("--events", "with_events", is_flag=True, help="Also list every journaled event.")
@json_option
def show(config_path: str | None, deployment_id: str, with_events: bool, as_json: bool) -> None:
    """Show one deployment in full: phases, hosts, durations, outcome, operator."""
    config = load_or_exit(config_path)
    journal = open_journal(config)
    row = journal.get_deployment(deployment_id)
    if row is None:
        # another machine's deployment: what its hosts recorded
        found = [r for r in _rows_from_hosts(config, 1000) if r["id"] == deployment_id]
        if found:
            view = found[0]
            if as_json:
                print_json(view)
                return
            click.echo(f"Deployment {view['id']}  (from the hosts' records)")
            click.echo(f"  status    {view['status']} (phase {view['phase'] or '-'})")
            click.echo(f"  release   {view['release']}  revision {view['revision']}")
            click.echo(f"  operator  {_operator(view)}")
            click.echo(f"  started   {_when(view['started_at'])}")
            click.echo(f"  live on   {', '.join(view['live_on']) or 'no host'}")
            return
        recent = ", ".join(r["id"] for r in journal.list_deployments(limit=5)) or "none"
        fail(
            f"unknown deployment id {deployment_id!r} (recent: {recent});"
            " see `portal-ops history --from-hosts`"
        )
    events = journal.events(deployment_id)
    phases = [
        {
            "run": e.run,
            "phase": e.phase,
            **{k: e.data.get(k) for k in ("number", "title", "status", "seconds", "detail")},
        }
        for e in events
        if e.kind == Kind.PHASE_FINISHED
    ]
    incidents = [
        {"ts": e.ts, "severity": e.data.get("severity"), "message": e.data.get("message")}
        for e in events
        if e.kind == Kind.INCIDENT
    ]
    if as_json:
        body = dict(row, phases=phases, incidents=incidents)
        if with_events:
            body["events"] = [e.to_dict() for e in events]
        print_json(body)
        return
    summary = row.get("summary") or {}
    click.echo(
        f"Deployment {row['id']}  ({'dry-run' if row.get('dry_run') else row.get('target')})"
    )
    click.echo(f"  outcome   {row.get('outcome') or row.get('status')}")
    click.echo(
        f"  release   {row.get('release')}  revision {summary.get('revision') or row.get('revision')}"
    )
    click.echo(f"  operator  {_operator(row)}")
    click.echo(
        f"  started   {_when(row.get('started_at'))}   finished {_when(row.get('finished_at'))}"
    )
    opts = row.get("options") or {}
    flags = [k for k, v in opts.items() if v]
    if flags:
        click.echo(f"  options   {', '.join('--' + f.replace('_', '-') for f in flags)}")
    click.echo("  phases")
    for p in phases:
        tag = "rollback " if p["run"] == "rollback" else ""
        click.echo(
            f"    {tag}{p['number']:>2}. {p['title']:<42} {p['status']:<10} {p['seconds'] or 0:7.2f}s  {p['detail'] or ''}"
        )
    hosts = summary.get("hosts") or {}
    if hosts:
        click.echo("  hosts")
        for name, h in hosts.items():
            click.echo(
                f"    {name:<14} {h.get('state', '?'):<12} release {h.get('release')}  (before: {h.get('previous')})"
            )
    rb = summary.get("rollback")
    if rb:
        click.echo(
            f"  rollback  {rb.get('outcome')} in {rb.get('seconds')}s; database: {rb.get('database')}; reason: {rb.get('reason')}"
        )
    samples = _health_samples(journal, deployment_id)
    if samples:
        click.echo(f"  health after the switch ({len(samples)} window(s), all hosts)")
        for label, key, fmt in (
            ("p95 ms", "p95", "{:.0f}"),
            ("errors", "error_rate", "{:.2%}"),
            ("req/s", "rps", "{:.1f}"),
        ):
            values = [r.get(key) for r in samples]
            known = [v for v in values if v is not None]
            last = fmt.format(known[-1]) if known else "-"
            peak = fmt.format(max(known)) if known else "-"
            click.echo(f"    {label:<7} {sparkline(values)}  last {last}, max {peak}")
        verdicts = "".join(
            {"pass": ".", "fail": "x"}.get(r.get("verdict") or "", "?") for r in samples
        )
        click.echo(f"    verdict {verdicts}  (. pass, x fail, ? inconclusive)")
    if incidents:
        click.echo("  incidents")
        for i in incidents:
            click.echo(f"    {_when(i['ts'])} {str(i['severity']).upper():<8} {i['message']}")
    if with_events:
        click.echo("  events")
        for e in events:
            click.echo(
                f"    {e.seq:>6} {_when(e.ts)} {e.run:<8} {e.kind:<20} {e.phase or '':<14} {e.host or '':<10} {e.data.get('line') or e.data.get('status') or ''}"
            )


BARS = " ▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], width: int = 60) -> str:
    """A one-line graph of the last ``width`` values (blank where a window had no data)."""
    values = values[-width:]
    known = [v for v in values if v is not None]
    top = max(known) if known else 0.0
    if top <= 0:
        return "".join(BARS[1] if v is not None else " " for v in values)
    return "".join(
        " " if v is None else BARS[max(1, round(v / top * (len(BARS) - 1)))] for v in values
    )


def _health_samples(journal: Journal, deployment_id: str) -> list[dict[str, Any]]:
    """The monitor's windows for the deployment, in total over all hosts."""
    from backend.monitor import SampleStore

    try:
        return SampleStore(journal.path).rows(deployment_id, phase="monitor", host="total")
    except Exception:  # no samples table yet: nothing monitored
        return []
