"""``portal-ops config check``: validate the config and print the resolved plan."""

from __future__ import annotations

import click

from backend import recipes
from backend.engine.traffic import batches, health_url

from .common import config_option, json_option, load_or_exit, print_json


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
                "config": cfg.model_dump(mode="json"),
                "batches": [[h.name for h in g] for g in groups],
                "primary": cfg.primary_host().name,
                "commands": steps,
            }
        )
        return
    p = cfg.portal
    click.echo(f"{cfg.source}: OK")
    click.echo(
        f"portal    {p.name}: {p.repository} @ {p.revision} -> {p.deploy_path} (recipe {p.recipe}, keep {p.keep_releases})"
    )
    click.echo(f"on failure {p.on_failure}; database rollback {p.database_rollback}")
    click.echo("hosts")
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
        click.echo(
            f"  {h.name:<14} {where:<36} roles {','.join(h.roles)}  path {cfg.deploy_path(h)}  health {health_url(cfg, h) or '-'}{key}"
        )
    click.echo(f"primary   {cfg.primary_host().name} (migrations and dumps run here)")
    click.echo(
        "batches   "
        + "  ->  ".join("[" + ", ".join(h.name for h in g) + "]" for g in groups)
        + f"   max_fail_percentage {cfg.rollout.max_fail_percentage:g}"
    )
    click.echo(f"balancer  {cfg.load_balancer.kind}")
    click.echo("commands")
    for step, command in steps.items():
        click.echo(f"  {step:<16} {command or '-'}")
