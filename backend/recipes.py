"""Recipes: the default command of each step for a kind of portal; config overrides any.

Commands run on the host with the working directory set to the release they concern.
Placeholders (``{{release}}``, ``{{deploy_path}}``, ``{{shared}}``, ``{{file}}``,
``{{steps}}``; which step knows which: ``backend.config.STEP_PLACEHOLDERS``) are filled
with quoted values by :func:`backend.shell.fill`.
"""

from __future__ import annotations

from .config import Config
from .shell import q

# Laravel's database settings, read from .env by a parser, never sourced: `. ./.env` runs
# whatever the file holds (`$(...)`, backticks) with the deploy user's rights. Only the DB_*
# keys named here are read; each value is taken literally (quotes stripped, an unquoted
# " # comment" dropped, as phpdotenv does) and exported as data, never evaluated.
DOTENV_DB = (
    r'while IFS= read -r line || [ -n "$line" ]; do'
    r' line=${line#export }; case "$line" in'
    r" DB_CONNECTION=*|DB_HOST=*|DB_PORT=*|DB_DATABASE=*|DB_USERNAME=*|DB_PASSWORD=*) ;;"
    r" *) continue ;; esac;"
    r' key=${line%%=*}; val=${line#*=}; case "$val" in'
    r" \"*\") val=${val#\"}; val=${val%\"} ;;"
    r" \'*\') val=${val#\'}; val=${val%\'} ;;"
    r" *) val=${val%% #*} ;; esac;"
    r' export "$key=$val"; done < .env && '
)
# MySQL/MariaDB or PostgreSQL, as DB_CONNECTION says (Laravel's own key)
_DUMP = (
    DOTENV_DB + 'case "$DB_CONNECTION" in'
    ' pgsql) PGPASSWORD="$DB_PASSWORD" pg_dump --format=custom --no-owner'
    ' -h "${DB_HOST:-127.0.0.1}" -p "${DB_PORT:-5432}" -U "$DB_USERNAME" "$DB_DATABASE"'
    " > {{file}} ;;"
    ' *) MYSQL_PWD="$DB_PASSWORD" mysqldump --single-transaction --quick'
    ' -h"${DB_HOST:-127.0.0.1}" -P"${DB_PORT:-3306}" -u"$DB_USERNAME" "$DB_DATABASE"'
    " > {{file}} ;; esac"
)
_RESTORE = (
    DOTENV_DB + 'case "$DB_CONNECTION" in'
    ' pgsql) PGPASSWORD="$DB_PASSWORD" pg_restore --clean --if-exists --no-owner'
    ' -h "${DB_HOST:-127.0.0.1}" -p "${DB_PORT:-5432}" -U "$DB_USERNAME" -d "$DB_DATABASE"'
    " {{file}} ;;"
    ' *) MYSQL_PWD="$DB_PASSWORD" mysql'
    ' -h"${DB_HOST:-127.0.0.1}" -P"${DB_PORT:-3306}" -u"$DB_USERNAME" "$DB_DATABASE"'
    " < {{file}} ;; esac"
)
# an artisan command only when the app has it (Horizon, Octane are optional packages)
_IF_ARTISAN = (
    "if php artisan list --raw 2>/dev/null | grep -q '^{cmd} '; then php artisan {run}; fi"
)
# php-fpm: the service [portal] php_fpm_service names, or the one php*-fpm unit running
_FPM_RELOAD = (
    "svc=$(systemctl list-units --type=service --state=running --no-legend --plain"
    " 'php*-fpm.service' 2>/dev/null | awk 'NR==1{print $1}');"
    ' if [ -n "$svc" ]; then sudo -n systemctl reload "$svc"; fi'
)

RECIPES: dict[str, dict[str, str]] = {
    "generic": {},
    "laravel": {
        "install": "composer install --no-dev --prefer-dist --no-interaction --optimize-autoloader",
        # storage:link once per release (public/storage is inside the release), then the
        # config/route/event caches (optimize) and the compiled views
        "build": "{ test -e public/storage || php artisan storage:link; }"
        " && php artisan optimize && php artisan view:cache",
        "maintenance_on": "php artisan down --retry=15",
        "maintenance_off": "php artisan up",
        "migrate": "php artisan migrate --force",
        "migrate_status": "php artisan migrate:status",
        "migrate_rollback": "php artisan migrate:rollback --force --step={{steps}}",
        "db_dump": _DUMP,
        "db_restore": _RESTORE,
        "reload": _FPM_RELOAD
        + "; "
        + _IF_ARTISAN.format(
            cmd="octane:reload", run="octane:status >/dev/null 2>&1 && php artisan octane:reload"
        ),
        "restart_workers": "php artisan queue:restart && "
        + _IF_ARTISAN.format(cmd="horizon:terminate", run="horizon:terminate"),
        "cache_clear": "php artisan optimize:clear",
    },
    # a WSGI/ASGI app: no framework assumed (migrations only where configured, or "django")
    "python": {
        "install": "python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt",
        "reload": "sudo -n systemctl reload gunicorn",
    },
    "django": {
        "install": "python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt",
        "build": ".venv/bin/python manage.py collectstatic --noinput",
        "migrate": ".venv/bin/python manage.py migrate --noinput",
        "migrate_status": ".venv/bin/python manage.py showmigrations --plan",
        "reload": "sudo -n systemctl reload gunicorn",
    },
}


def command(config: Config, step: str) -> str | None:
    """The command for ``step``: config's ``[commands]`` first, then the recipe's default."""
    if step in config.commands:
        return config.commands[step] or None  # an empty string disables a recipe's step
    template = RECIPES[config.portal.recipe].get(step)
    service = config.portal.php_fpm_service
    if template and step == "reload" and config.portal.recipe == "laravel" and service:
        # a named service (quoted; braces doubled so no placeholder can hide in it)
        named = "sudo -n systemctl reload " + q(service).replace("{", "{{").replace("}", "}}")
        template = template.replace(_FPM_RELOAD, named)
    return template


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
