"""Recipes: the default command of each step for a kind of portal; config overrides any.

Commands run on the host with the working directory set to the release they concern.
Placeholders (``{{release}}``, ``{{deploy_path}}``, ``{{shared}}``, ``{{file}}``,
``{{steps}}``; which step knows which: ``backend.config.STEP_PLACEHOLDERS``) are filled
with quoted values by :func:`backend.shell.fill`.
"""

from __future__ import annotations

from .config import Config

_LARAVEL_ENV = "set -a && . ./.env && set +a && "

RECIPES: dict[str, dict[str, str]] = {
    "generic": {},
    "laravel": {
        "install": "composer install --no-dev --prefer-dist --no-interaction --optimize-autoloader",
        "build": "php artisan config:cache && php artisan route:cache && php artisan view:cache",
        "maintenance_on": "php artisan down --retry=15",
        "maintenance_off": "php artisan up",
        "migrate": "php artisan migrate --force",
        "migrate_status": "php artisan migrate:status",
        "migrate_rollback": "php artisan migrate:rollback --force --step={{steps}}",
        "db_dump": _LARAVEL_ENV + 'MYSQL_PWD="$DB_PASSWORD" mysqldump --single-transaction --quick'
        ' -h"$DB_HOST" -u"$DB_USERNAME" "$DB_DATABASE" > {{file}}',
        "db_restore": _LARAVEL_ENV
        + 'MYSQL_PWD="$DB_PASSWORD" mysql -h"$DB_HOST" -u"$DB_USERNAME" "$DB_DATABASE" < {{file}}',
        "reload": "sudo -n systemctl reload php8.3-fpm",
        "restart_workers": "php artisan queue:restart",
        "cache_clear": "php artisan optimize:clear",
    },
    "python": {
        "install": "python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt",
        "migrate": ".venv/bin/python manage.py migrate --noinput",
        "migrate_status": ".venv/bin/python manage.py showmigrations --plan",
        "reload": "sudo -n systemctl reload gunicorn",
    },
}


def command(config: Config, step: str) -> str | None:
    """The command for ``step``: config's ``[commands]`` first, then the recipe's default."""
    if step in config.commands:
        return config.commands[step] or None  # an empty string disables a recipe's step
    return RECIPES[config.portal.recipe].get(step)


def parse_pending(output: str) -> int | None:
    """Pending migrations from a status command: ``PENDING=<n>``, Laravel's table rows marked
    ``Pending``, or Django's ``[ ]`` lines. ``None`` when the output says nothing we know."""
    applied_or_pending = False
    count = 0
    for line in output.splitlines():
        text = line.strip()
        if text.startswith("PENDING="):
            try:
                return int(text.split("=", 1)[1])
            except ValueError:
                return None
        if "Pending" in text or text.startswith("[ ]"):
            count += 1
            applied_or_pending = True
        elif "Ran" in text or text.startswith("[X]"):
            applied_or_pending = True
    return count if applied_or_pending else None


def parse_applied(output: str) -> int | None:
    for line in reversed(output.splitlines()):
        if line.strip().startswith("MIGRATIONS_APPLIED="):
            try:
                return int(line.strip().split("=", 1)[1])
            except ValueError:
                return None
    return None
