"""A tiny portal for engine tests: a git repo with two versions and a file "database".

The recipe is ``generic`` with shell commands, so the tests exercise the engine, the SSH
transport and the layout, not an app framework. The "database" is a text file in the
shared folder: one line per applied migration, which makes "the database is as it was"
an exact comparison.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

MIGRATE = """#!/bin/sh
# apply every migrations/*.up not yet recorded in $DB; print MIGRATIONS_APPLIED=n
set -e
DB="$1"; n=0
touch "$DB"
for m in $(ls migrations | sort); do
  grep -qx "$m" "$DB" && continue
  if [ -e "migrations/$m/fail" ]; then echo "migration $m failed" >&2; echo "MIGRATIONS_APPLIED=$n"; exit 1; fi
  echo "$m" >> "$DB"; n=$((n+1)); echo "applied $m"
done
echo "MIGRATIONS_APPLIED=$n"
"""
STATUS = """#!/bin/sh
DB="$1"; p=0; touch "$DB"
for m in $(ls migrations | sort); do grep -qx "$m" "$DB" || p=$((p+1)); done
echo "PENDING=$p"
"""
ROLLBACK = """#!/bin/sh
# undo the last $2 migrations recorded in $1
DB="$1"; n="$2"
head -n "-$n" "$DB" > "$DB.tmp" && mv "$DB.tmp" "$DB"
echo "ROLLED_BACK=$n"
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def make_repo(root: Path, *, v2_migration_fails: bool = False) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "bin").mkdir()
    for name, body in (("migrate", MIGRATE), ("status", STATUS), ("rollback", ROLLBACK)):
        (repo / "bin" / name).write_text(body)
    (repo / "migrations" / "001_init").mkdir(parents=True)
    (repo / "migrations" / "001_init" / "up").write_text("create\n")
    (repo / "VERSION").write_text("1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")
    git(repo, "tag", "v1")
    (repo / "VERSION").write_text("2\n")
    (repo / "migrations" / "002_more").mkdir()
    (repo / "migrations" / "002_more" / "up").write_text("alter\n")
    if v2_migration_fails:
        (repo / "migrations" / "003_broken").mkdir()
        (repo / "migrations" / "003_broken" / "fail").write_text("x\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v2")
    git(repo, "tag", "v2")
    return repo


def ssh_config(
    sshd: Any, root: Path, repo: Path, hosts: int = 2, **overrides: Any
) -> dict[str, Any]:
    """A portal-ops config dict: ``hosts`` deploy paths reached through the one sshd."""
    shared_db = root / "db.txt"
    cfg: dict[str, Any] = {
        "portal": {
            "name": "test-portal",
            "repository": str(repo),
            "revision": "v2",
            "deploy_path": str(root / "host-1"),
            "recipe": "generic",
            "keep_releases": 3,
            "database_rollback": "migrations",
            "maintenance_during_migrations": False,
        },
        "hosts": [
            {
                "name": f"host-{i}",
                "address": sshd.host,
                "port": sshd.port,
                "user": sshd.user,
                "deploy_path": str(root / f"host-{i}"),
                "roles": ["web", "primary"] if i == 1 else ["web"],
            }
            for i in range(1, hosts + 1)
        ],
        "ssh": {
            "known_hosts": str(sshd.known_hosts),
            "identity_files": [str(sshd.client_key)],
            "use_agent": False,
            "connect_timeout": 5,
            "command_timeout": 30,
            "max_reconnects": 3,
        },
        "rollout": {"batches": ["1", "100%"], "drain_seconds": 0},
        "commands": {
            "install": "test -f VERSION",
            "migrate": f"sh bin/migrate {shared_db}",
            "migrate_status": f"sh bin/status {shared_db}",
            "migrate_rollback": "sh bin/rollback " + str(shared_db) + " {{steps}}",
            "db_dump": f"cp {shared_db} {{{{file}}}}",
            "db_restore": f"cp {{{{file}}}} {shared_db}",
        },
        "state": {"dir": str(root / "state")},
        # the "hosts" are this machine, whose load is the test suite's own, not a portal's
        "validation": {"disabled": {"P08": "test hosts share the machine running the tests"}},
    }
    for key, value in overrides.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    return cfg


def current(root: Path, host: str) -> str | None:
    link = root / host / "current"
    return Path(link.readlink()).name if link.is_symlink() else None


def tree(path: Path) -> dict[str, str]:
    """Every file, link and dir under ``path`` with its content or target: to prove a dry-run
    changed nothing."""
    out: dict[str, str] = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        if p.is_symlink():
            out[rel] = "-> " + str(p.readlink())
        elif p.is_file():
            out[rel] = p.read_bytes().hex()[:200]
        else:
            out[rel] = "dir"
    return out


def stored_record(path: Path) -> dict[str, Any] | None:
    """A host record file as the probe reads it (its own awk): the last complete version."""
    from backend.engine.layout import READ_STATE, parse_probe

    out = subprocess.run(
        ["awk", READ_STATE, str(path)],
        env={"L": "", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    records = parse_probe(out.stdout).records
    return records[-1] if records else None


async def live_v1_then_a_reload_that_fails_once(sshd: Any, tmp_path: Path) -> tuple[dict, str]:
    """Two hosts live on v1 (checks skipped), then a config whose first reload anywhere
    fails (``reloading`` on stdout, ``nope`` on stderr, exit 5) and every later one works:
    a deployment of v2 fails its canary after the switch. (config, v1's release)"""
    from backend.config import parse_config
    from backend.engine import Engine
    from backend.journal import Journal

    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    config = parse_config(cfg)
    v1 = await Engine(config, journal=Journal(Path(config.state.dir) / "j.db")).deploy(
        revision="v1", skip_validation=True
    )
    assert v1.ok, v1.error
    once = tmp_path / "reload-failed-once"
    cfg["commands"]["reload"] = (
        f"if [ ! -e {once} ]; then touch {once}; echo reloading; echo nope >&2; exit 5; fi"
    )
    return cfg, v1.release
