"""``portal-ops config check``: validate the config and print the resolved plan."""

from __future__ import annotations

import click

from backend import recipes
from backend.engine.traffic import batches, health_url
from backend.redact import redact
from backend.schema import dump

from .common import config_option, json_option, load_or_exit, print_json


def say(text: str) -> None:
    """A line of the summary: URLs with tokens and configured secrets masked."""
    click.echo(redact(text))


@click.group()
def config() -> None:
    """Configuration commands."""


@config.command("check")
@config_option
@json_option
def check(config_path: str | None, as_json: bool) -> None:
    """Validate portal-ops.toml (every problem listed, exit 2) and print what it resolves to."""
    cfg = load_or_exit(config_path)
    groups = batches(list(cfg.hosts), cfg.rollout.batches)
    steps = {
        s: recipes.command(cfg, s)
        for s in sorted(set(recipes.RECIPES["laravel"]) | set(cfg.commands))
    }
    if as_json:
        print_json(
            {
                "source": cfg.source,
                "environment": cfg.environment,
                "sources": cfg.sources,  # each key -> the file that set it (-e overlays)
                "limit": cfg.limit,
                "config": dump(cfg),
                "batches": [[h.name for h in g] for g in groups],
                "primary": cfg.primary_host().name,
                "commands": steps,
            }
        )
        return
    p = cfg.portal
    say(f"{cfg.source}: OK")
    if cfg.environment:
        overlaid = {k: f for k, f in cfg.sources.items() if f != cfg.source}
        say(f"overlay   -e {cfg.environment}: {len(overlaid)} key(s) set by it")
        for key, file in overlaid.items():
            say(f"  {key}  <- {file}")
    if cfg.limit is not None:
        say(f"limited   to {', '.join(cfg.limit)} (--hosts/--roles) of {len(cfg.fleet)} host(s)")
    say(
        f"portal    {p.name}: {p.repository} @ {p.revision} -> {p.deploy_path} (recipe {p.recipe}, keep {p.keep_releases})"
    )
    say(f"on failure {p.on_failure}; database rollback {p.database_rollback}")
    say("hosts")
    for h in cfg.hosts:
        where = (
            "local"
            if h.transport == "local"
            else f"ssh {h.user or ''}{'@' if h.user else ''}{h.address}"
            + (f":{h.port}" if h.port else "")  # none: ssh_config's Port, else 22
        )
        if h.jump:
            where += f" via {h.jump}"
        key = "" if h.verify_host_key else "  (HOST KEY NOT VERIFIED)"
        say(
            f"  {h.name:<14} {where:<36} roles {','.join(h.roles)}  path {cfg.deploy_path(h)}  health {health_url(cfg, h) or '-'}{key}"
        )
    say(f"primary   {cfg.primary_host().name} (migrations and dumps run here)")
    say(
        "batches   "
        + "  ->  ".join("[" + ", ".join(h.name for h in g) + "]" for g in groups)
        + f"   max_fail_percentage {cfg.rollout.max_fail_percentage:g}"
    )
    say(f"balancer  {cfg.load_balancer.kind}")
    say("commands")
    for step, command in steps.items():
        say(f"  {step:<16} {command or '-'}")
