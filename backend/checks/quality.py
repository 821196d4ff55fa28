"""Code quality checks on what is about to be deployed: the quality gate (P03), test
coverage from a report (P04) and known vulnerable dependencies (P05)."""

from __future__ import annotations

import posixpath

from ..shell import q
from .context import LOCAL, NO_DIR_EXIT, Context
from .model import Outcome, Status, check, errored, failed, passed, skipped, warned
from .parsers import parse_audit, parse_coverage


@check("P03", "Quality gate passes", "quality", weight=5)
async def quality_gate(ctx: Context) -> list[Outcome]:
    probe = ctx.vc.quality_gate
    if probe is None:
        return [
            skipped(
                "no quality_gate command configured"
                " (e.g. vendor/bin/phpstan analyse --level=8 --no-progress)"
            )
        ]
    return await ctx.run_probe(probe, "local")


@check("P04", "Test coverage at or above the minimum", "quality", weight=6)
async def coverage(ctx: Context) -> list[Outcome]:
    vc = ctx.vc
    if not vc.coverage_report:
        return [skipped("no coverage_report configured (Clover or Cobertura XML, or a percentage)")]
    threshold = f">= {vc.coverage_min:g} %"
    if vc.coverage_on == "local":
        where, path = LOCAL, vc.coverage_report
    else:
        where = ctx.primary() or LOCAL
        path = vc.coverage_report
        if not path.startswith("/"):
            path = posixpath.join(ctx.release_dir(where), path)

    async def one(name: str) -> Outcome:
        result = await ctx.sh(name, f"cat -- {q(path)}")
        if not result.ok:
            return errored(
                f"cannot read the coverage report {path}: {result.tail(1)}", threshold=threshold
            )
        try:
            percent, kind = parse_coverage(result.stdout)
        except ValueError as exc:
            return errored(f"{path}: {exc}", threshold=threshold)
        status = passed if percent >= vc.coverage_min else failed
        return status(
            f"{percent:g}% line coverage ({kind} report {posixpath.basename(path)})",
            value=percent,
            unit="%",
            threshold=threshold,
        )

    return await ctx.each_host(one, [where])


@check("P05", "No critical dependency vulnerabilities", "quality", weight=9, critical=True)
async def dependency_audit(ctx: Context) -> list[Outcome]:
    vc = ctx.vc
    probe = vc.audit
    if probe is None:
        return [
            skipped(
                "no audit command configured"
                " (e.g. composer audit --locked --format=json, pip-audit -f json)"
            )
        ]
    fail_on = {s.lower() for s in vc.audit_fail_severities}
    threshold = f"0 advisories of severity {'/'.join(sorted(fail_on))}"

    async def one(name: str) -> Outcome:
        result = await ctx.sh(name, ctx.probe_command(name, probe))
        if result.exit_status == NO_DIR_EXIT and "portal-ops: no directory" in result.stderr:
            return errored(result.stderr.strip().removeprefix("portal-ops: "))
        try:
            advisories = parse_audit(result.stdout)
        except ValueError as exc:
            return errored(
                f"`{probe.command}` (exit {result.exit_status}): {exc}:"
                f" {ctx.redact(result.tail(2))}",
                threshold=threshold,
            )
        blocking, minor = [], []
        for adv in advisories:
            if adv.severity in fail_on or (
                adv.severity is None and vc.audit_unknown_severity == "fail"
            ):
                blocking.append(adv)
            else:
                minor.append(adv)
        meta = {
            "advisories": [
                {"package": a.package, "id": a.id, "severity": a.severity or "unknown"}
                for a in advisories[:20]
            ],
            "total": len(advisories),
        }
        names = ", ".join(
            f"{a.package} {a.id} ({a.severity or 'severity unknown'})" for a in blocking[:5]
        )
        if blocking:
            return failed(
                f"{len(blocking)} blocking advisor{'y' if len(blocking) == 1 else 'ies'}: {names}",
                value=len(blocking),
                unit="blocking",
                threshold=threshold,
                meta=meta,
            )
        if minor:
            return warned(
                f"{len(minor)} advisories below the blocking severity",
                value=0,
                unit="blocking",
                threshold=threshold,
                meta=meta,
            )
        return Outcome(
            Status.PASS,
            "no known vulnerabilities",
            value=0,
            unit="blocking",
            threshold=threshold,
            meta=meta,
        )

    return await ctx.each_host(one, ctx.select(probe.on or "local", probe.roles))
