"""The sample portal's management commands: what ``php artisan`` is to the real portal.

Run from a release (``python manage.py migrate``); it always works on the release it lives in. Output ends
with ``KEY=VALUE`` lines (``MIGRATIONS_APPLIED=1``, ``PENDING=0``, ``SHA256=...``,
``PID=...``) that portal-ops parses; errors go to stderr with a non-zero exit.

Migration files are ``migrations/NNN_name.sql`` with an ``-- up`` and a ``-- down`` section.
Each migration runs in its own transaction and its down section is stored with it in
``schema_migrations``, so a rollback works from any release, even one that never had the file.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import settings as portal_settings
from settings import RELEASE_DIR, Settings, SettingsError, pid_alive

MIGRATION_FILE = re.compile(r"^(\d+)_([A-Za-z0-9_-]+)\.sql$")
SECTION = re.compile(r"^--\s*(up|down)\s*$", re.IGNORECASE)
STOP_TIMEOUT = 10.0
START_TIMEOUT = 10.0


class CommandError(Exception):
    """A failure with a message for stderr; exit code 1."""


# -- migrations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    up: str
    down: str

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"


def parse_migration(path: Path) -> Migration:
    match = MIGRATION_FILE.match(path.name)
    if not match:
        raise CommandError(f"{path}: migration files are named NNN_name.sql")
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text().splitlines():
        marker = SECTION.match(line.strip())
        if marker:
            current = sections.setdefault(marker.group(1).lower(), [])
        elif current is not None:
            current.append(line)
    up = "\n".join(sections.get("up", [])).strip()
    if not up:
        raise CommandError(f"{path}: no '-- up' section (expected '-- up' ... '-- down' ...)")
    return Migration(
        match.group(1), match.group(2), up, "\n".join(sections.get("down", [])).strip()
    )


def load_migrations(directory: Path) -> list[Migration]:
    if not directory.is_dir():
        return []
    found = [parse_migration(p) for p in sorted(directory.glob("*.sql"))]
    versions = [m.version for m in found]
    dupes = sorted({v for v in versions if versions.count(v) > 1})
    if dupes:
        raise CommandError(f"{directory}: more than one migration numbered {', '.join(dupes)}")
    return sorted(found, key=lambda m: int(m.version))


def statements(sql: str) -> list[str]:
    """Split a script into statements (``executescript`` would commit our transaction)."""
    result: list[str] = []
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                result.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        part.strip().startswith("--") for part in buffer.strip().splitlines() if part.strip()
    ):
        raise CommandError(f"incomplete SQL statement (missing ';'?): {buffer.strip()[:80]!r}")
    return result


def connect(cfg: Settings) -> sqlite3.Connection:
    """Autocommit mode: every transaction below is explicit (BEGIN IMMEDIATE ... COMMIT)."""
    cfg.database.parent.mkdir(parents=True, exist_ok=True)
    return sqlite3.connect(cfg.database, timeout=15, isolation_level=None)


def ensure_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version TEXT PRIMARY KEY, applied_at TEXT NOT NULL, name TEXT, down_sql TEXT)"
    )


def applied_versions(conn: sqlite3.Connection) -> list[str]:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if not exists:
        return []
    rows = conn.execute("SELECT version FROM schema_migrations").fetchall()
    return sorted((r[0] for r in rows), key=int)


def cmd_migrate(cfg: Settings, args: argparse.Namespace) -> int:
    migrations = load_migrations(Path("migrations"))
    conn = connect(cfg)
    applied = 0
    try:
        ensure_table(conn)
        for migration in migrations:
            started = time.monotonic()
            conn.execute("BEGIN IMMEDIATE")
            try:
                done = conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
                ).fetchone()
                if done:  # applied before, or by a concurrent migrate that won the lock
                    conn.execute("ROLLBACK")
                    continue
                for statement in statements(migration.up):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at, name, down_sql)"
                    " VALUES (?, ?, ?, ?)",
                    (migration.version, _now(), migration.name, migration.down),
                )
                conn.execute("COMMIT")
            except (sqlite3.Error, CommandError) as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                print(f"FAILED  {migration.label}: {exc}", flush=True)
                print(f"MIGRATIONS_APPLIED={applied}")
                print(f"MIGRATION_FAILED={migration.label}")
                print(
                    f"manage.py migrate: migration {migration.label} failed and was rolled back:"
                    f" {exc} ({applied} migration(s) applied before it stay applied)",
                    file=sys.stderr,
                )
                return 1
            applied += 1
            print(f"Migrated {migration.label} ({(time.monotonic() - started) * 1000:.0f} ms)")
    finally:
        conn.close()
    if not applied:
        print("Nothing to migrate.")
    print(f"MIGRATIONS_APPLIED={applied}")
    return 0


def cmd_status(cfg: Settings, args: argparse.Namespace) -> int:
    migrations = load_migrations(Path("migrations"))
    if cfg.database.exists():
        conn = sqlite3.connect(f"file:{quote(str(cfg.database))}?mode=ro", uri=True, timeout=15)
        try:
            applied = applied_versions(conn)
        finally:
            conn.close()
    else:
        applied = []
    pending = [m for m in migrations if m.version not in applied]
    known = {m.version: m.label for m in migrations}
    for version in applied:
        print(f"[X] {known.get(version, version + ' (not in this release)')}")
    for migration in pending:
        print(f"[ ] {migration.label}")
    print(f"PENDING={len(pending)}")
    print(f"APPLIED={len(applied)}")
    return 0


def cmd_rollback(cfg: Settings, args: argparse.Namespace) -> int:
    files = {m.version: m for m in load_migrations(Path("migrations"))}
    conn = connect(cfg)
    rolled = 0
    try:
        versions = applied_versions(conn)
        if args.to is not None:
            targets = [v for v in reversed(versions) if int(v) > int(args.to)]
        else:
            targets = list(reversed(versions))[: args.steps]
        for version in targets:
            started = time.monotonic()
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT name, down_sql FROM schema_migrations WHERE version = ?", (version,)
                ).fetchone()
                if row is None:  # rolled back concurrently
                    conn.execute("ROLLBACK")
                    continue
                name, down = row[0] or "", row[1] or ""
                if not down.strip() and version in files:
                    down = files[version].down
                if not down.strip():
                    raise CommandError(f"migration {version} has no '-- down' section")
                for statement in statements(down):
                    conn.execute(statement)
                conn.execute("DELETE FROM schema_migrations WHERE version = ?", (version,))
                conn.execute("COMMIT")
            except (sqlite3.Error, CommandError) as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                print(f"ROLLED_BACK={rolled}")
                print(f"manage.py rollback: {version} failed: {exc}", file=sys.stderr)
                return 1
            rolled += 1
            label = f"{version}_{name}" if name else version
            print(f"Rolled back {label} ({(time.monotonic() - started) * 1000:.0f} ms)")
    finally:
        conn.close()
    print(f"ROLLED_BACK={rolled}")
    return 0


# -- dump and restore -------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def cmd_dump(cfg: Settings, args: argparse.Namespace) -> int:
    """A consistent copy through the backup API, written beside the target then renamed."""
    if not cfg.database.exists():
        raise CommandError(f"no database at {cfg.database}")
    target = Path(args.file)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    src = sqlite3.connect(cfg.database, timeout=15)
    try:
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    os.replace(tmp, target)
    print(f"DUMP={target.resolve()}")
    print(f"BYTES={target.stat().st_size}")
    print(f"SHA256={sha256_file(target)}")
    return 0


def cmd_restore(cfg: Settings, args: argparse.Namespace) -> int:
    """Checked first (checksum if given, then SQLite's integrity check), then copied into the
    live database page by page under its lock, so running servers see old or new, never half."""
    source = Path(args.file)
    if not source.is_file():
        raise CommandError(f"no dump at {source}: nothing restored")
    checksum = sha256_file(source)
    if args.sha256 and args.sha256.lower() != checksum:
        raise CommandError(
            f"{source}: checksum mismatch (expected {args.sha256}, found {checksum}): nothing restored"
        )
    try:
        src = sqlite3.connect(f"file:{quote(str(source.resolve()))}?mode=ro", uri=True)
        verdict = src.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise CommandError(
            f"{source}: not a usable SQLite dump ({exc}): nothing restored"
        ) from None
    try:
        if verdict != "ok":
            raise CommandError(f"{source}: integrity check failed ({verdict}): nothing restored")
        cfg.database.parent.mkdir(parents=True, exist_ok=True)
        dst = sqlite3.connect(cfg.database, timeout=15)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    print(f"RESTORED={source.resolve()}")
    print(f"SHA256={checksum}")
    return 0


# -- the server process --------------------------------------------------------------------------


def read_pid(cfg: Settings) -> int | None:
    try:
        return int(cfg.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def is_portal_app(pid: int) -> bool:
    """Guard against a recycled pid: only signal a process that runs app.py."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc to ask: trust the pid file
    return any(part.endswith(b"app.py") for part in cmdline)


def stop_server(cfg: Settings) -> int | None:
    """SIGTERM, wait up to 10 s for in-flight requests, then SIGKILL. The stopped pid."""
    pid = read_pid(cfg)
    if pid is None or not pid_alive(pid) or not is_portal_app(pid):
        with contextlib.suppress(OSError):
            cfg.pidfile.unlink()
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if pid_alive(pid):
        print(f"pid {pid} did not stop within {STOP_TIMEOUT:.0f} s: SIGKILL", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while pid_alive(pid) and time.monotonic() < deadline + 5:
            time.sleep(0.02)
    with contextlib.suppress(OSError):
        if read_pid(cfg) == pid:
            cfg.pidfile.unlink()
    return pid


def target_release() -> Path:
    """The release ``current`` points to now (``{deploy_path}/releases/<id>``), else this one."""
    if RELEASE_DIR.parent.name == "releases":
        current = RELEASE_DIR.parent.parent / "current"
        if current.exists():
            return current.resolve()
    return RELEASE_DIR


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def start_server(release: Path) -> int:
    """Start app.py fully detached (own session, no inherited pipes) and wait until it
    listens, so the caller's SSH channel or subprocess pipe closes as soon as we exit."""
    cfg = portal_settings.load(release)
    cfg.ensure_dirs()
    if port_open(cfg.port):
        raise CommandError(f"port {cfg.port} is already in use by another process")
    with cfg.server_log.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(release / "app.py")],
            cwd=release,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CommandError(
                f"app.py exited with status {proc.returncode} at start:\n" + _tail(cfg.server_log)
            )
        if port_open(cfg.port) and read_pid(cfg) == proc.pid:
            return proc.pid
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    raise CommandError(f"app.py did not listen on port {cfg.port} within {START_TIMEOUT:.0f} s")


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def cmd_restart(cfg: Settings, args: argparse.Namespace) -> int:
    old = stop_server(cfg)
    release = target_release()
    pid = start_server(release)
    print(f"Stopped pid {old}" if old else "No server was running")
    print(f"RELEASE={release.name}")
    print(f"PID={pid}")
    return 0


def cmd_start(cfg: Settings, args: argparse.Namespace) -> int:
    pid = read_pid(cfg)
    if pid and pid_alive(pid) and is_portal_app(pid):
        print("Already running")
        print(f"PID={pid}")
        return 0
    return cmd_restart(cfg, args)


def cmd_stop(cfg: Settings, args: argparse.Namespace) -> int:
    pid = stop_server(cfg)
    print(f"STOPPED={pid}" if pid else "NOT_RUNNING")
    return 0


def cmd_down(cfg: Settings, args: argparse.Namespace) -> int:
    cfg.storage.mkdir(parents=True, exist_ok=True)
    cfg.maintenance_file.write_text(f"{_now()}\n")
    print("MAINTENANCE=on")
    return 0


def cmd_up(cfg: Settings, args: argparse.Namespace) -> int:
    with contextlib.suppress(FileNotFoundError):
        cfg.maintenance_file.unlink()
    print("MAINTENANCE=off")
    return 0


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="manage.py", description="Business Portal management")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("status", help="print PENDING= and APPLIED=").set_defaults(func=cmd_status)
    rb = sub.add_parser("rollback", help="undo the last N applied migrations")
    group = rb.add_mutually_exclusive_group(required=True)
    group.add_argument("--steps", type=_natural, help="how many migrations to undo")
    group.add_argument("--to", type=_natural, help="undo every migration numbered above this")
    rb.set_defaults(func=cmd_rollback)
    dump = sub.add_parser("dump", help="write a consistent copy of the database")
    dump.add_argument("file")
    dump.set_defaults(func=cmd_dump)
    restore = sub.add_parser("restore", help="replace the database content from a dump")
    restore.add_argument("file")
    restore.add_argument("--sha256", help="refuse the dump unless its checksum matches")
    restore.set_defaults(func=cmd_restore)
    sub.add_parser("restart", help="gracefully restart the server").set_defaults(func=cmd_restart)
    sub.add_parser("start", help="start the server unless running").set_defaults(func=cmd_start)
    sub.add_parser("stop", help="gracefully stop the server").set_defaults(func=cmd_stop)
    sub.add_parser("down", help="maintenance mode on").set_defaults(func=cmd_down)
    sub.add_parser("up", help="maintenance mode off").set_defaults(func=cmd_up)
    return p


def _natural(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    os.chdir(RELEASE_DIR)  # the release this manage.py belongs to, wherever it was called from
    try:
        cfg = portal_settings.load(RELEASE_DIR)
        return int(args.func(cfg, args))
    except (CommandError, SettingsError) as exc:
        print(f"manage.py {args.command}: {exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        print(f"manage.py {args.command}: database error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
