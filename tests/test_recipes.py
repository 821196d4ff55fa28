"""Recipes produce the right commands, run by a real /bin/sh against stand-in tools on PATH
(mysqldump, pg_dump, php, sudo, systemctl that print what they were given): Laravel's .env
is parsed, never sourced (a hostile value stays data), MySQL or Postgres as DB_CONNECTION
says, Horizon and Octane only when installed, the php-fpm service named or found; the
python recipe assumes no Django."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from backend.config import parse_config
from backend.recipes import command
from backend.shell import fill, in_dir

TOOLS = {
    # each prints its name, its arguments one per line, and the DB password it was given
    "mysqldump": 'echo mysqldump; printf "%s\\n" "$@"; echo "pwd=$MYSQL_PWD"',
    "mysql": 'echo mysql; printf "%s\\n" "$@"; echo "pwd=$MYSQL_PWD"; cat',
    "pg_dump": 'echo pg_dump; printf "%s\\n" "$@"; echo "pwd=$PGPASSWORD"',
    "pg_restore": 'echo pg_restore; printf "%s\\n" "$@"; echo "pwd=$PGPASSWORD"',
    "sudo": 'echo "sudo $*" >> "$CALLS"',
    "systemctl": 'echo "php8.2-fpm.service loaded active running PHP 8.2"',
    # artisan: `list --raw` shows the commands in $ARTISAN_HAS; every call is recorded
    "php": 'echo "php $*" >> "$CALLS"; [ "$2" = list ] && printf "%s x\\n" $ARTISAN_HAS; exit 0',
}

HOSTILE_ENV = """APP_NAME="Portal $(touch pwned-app)"
# DB_PASSWORD=commented-out
export DB_CONNECTION={connection}
DB_HOST=db.internal # the primary
DB_DATABASE='portal'
DB_USERNAME=deploy
DB_PASSWORD="p$(touch pwned) `touch pwned2`; rm -rf /x 'q'"
"""


def config(recipe: str, **portal: object):
    return parse_config(
        {
            "portal": {"repository": "x", "deploy_path": "/srv/app", "recipe": recipe, **portal},
            "hosts": [{"name": "web-1", "address": "127.0.0.1"}],
        }
    )


def run(tmp_path: Path, line: str, **env: str) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in TOOLS.items():
        tool = bin_dir / name
        tool.write_text(f"#!/bin/sh\n{body}\n")
        tool.chmod(0o755)
    full = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(tmp_path / "calls")}
    done = subprocess.run(
        ["/bin/sh", "-c", in_dir(str(tmp_path), line)],
        env={**full, **env},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_laravel_dump_parses_env_and_never_runs_it(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(HOSTILE_ENV.format(connection="mysql"))
    dump = tmp_path / "dump file.sql"
    run(tmp_path, fill(command(config("laravel"), "db_dump") or "", file=str(dump)))
    lines = dump.read_text().splitlines()
    assert lines[0] == "mysqldump"
    assert "-hdb.internal" in lines and "-udeploy" in lines and lines[-2] == "portal"
    assert lines[-1] == "pwd=p$(touch pwned) `touch pwned2`; rm -rf /x 'q'"
    assert not list(tmp_path.glob("pwned*"))


def test_laravel_dump_and_restore_with_postgres(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(HOSTILE_ENV.format(connection="pgsql"))
    dump = tmp_path / "db.dump"
    run(tmp_path, fill(command(config("laravel"), "db_dump") or "", file=str(dump)))
    lines = dump.read_text().splitlines()
    assert lines[0] == "pg_dump" and "--format=custom" in lines
    assert lines[lines.index("-h") + 1] == "db.internal" and lines[-2] == "portal"
    out = run(tmp_path, fill(command(config("laravel"), "db_restore") or "", file=str(dump)))
    restored = out.splitlines()
    assert restored[0] == "pg_restore" and restored[-2] == str(dump)
    assert restored[restored.index("-d") + 1] == "portal"
    assert not list(tmp_path.glob("pwned*"))


def test_laravel_workers_and_reload_use_what_is_installed(tmp_path: Path) -> None:
    cfg = config("laravel")
    calls = tmp_path / "calls"
    run(tmp_path, command(cfg, "restart_workers") or "", ARTISAN_HAS="horizon:terminate")
    assert "php artisan horizon:terminate" in calls.read_text()
    calls.unlink()
    run(tmp_path, command(cfg, "restart_workers") or "", ARTISAN_HAS="queue:restart")
    assert "horizon:terminate" not in calls.read_text()
    calls.unlink()
    # the running php*-fpm unit is found; Octane reloads when installed
    run(tmp_path, command(cfg, "reload") or "", ARTISAN_HAS="octane:reload")
    text = calls.read_text()
    assert "sudo -n systemctl reload php8.2-fpm.service" in text
    assert "php artisan octane:reload" in text
    build = command(cfg, "build") or ""
    assert "storage:link" in build and "php artisan optimize" in build


def test_the_php_fpm_service_is_configurable_and_quoted() -> None:
    reload = command(config("laravel", php_fpm_service="php8.1-fpm"), "reload") or ""
    assert reload.startswith("sudo -n systemctl reload php8.1-fpm;")
    assert "php8.3" not in reload
    hostile = command(config("laravel", php_fpm_service="fpm; touch /tmp/x"), "reload") or ""
    assert hostile.startswith("sudo -n systemctl reload 'fpm; touch /tmp/x';")


def test_python_assumes_no_django_and_django_is_its_own_recipe() -> None:
    plain = config("python")
    assert command(plain, "migrate") is None and command(plain, "migrate_status") is None
    assert "manage.py" not in " ".join(
        filter(None, (command(plain, s) for s in ("install", "build")))
    )
    django = config("django")
    assert "manage.py migrate" in (command(django, "migrate") or "")
    assert "collectstatic" in (command(django, "build") or "")
