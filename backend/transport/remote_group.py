"""Remote commands that die with their session.

Each command runs on the host in a process group of its own (``setsid``), its group id in a
pid file named after the run it belongs to. A watcher reads the session's stdin: when the
SSH channel closes (portal-ops killed, the link lost, a timeout or a cancel closing it), the
watcher gets end-of-file and kills the whole group. A retry or a database rollback first
runs :func:`kill_tagged` / :func:`kill_pidfile`, which stop what is left and wait until it
is gone ("confirmed dead").
"""

from __future__ import annotations

import re
import secrets

from ..shell import q

RUN_DIR = '"${TMPDIR:-/tmp}/portal-ops-run-$(id -u)"'
_SAFE = re.compile(r"[^A-Za-z0-9._-]")

# $1 the command, $2 the pid file. The watcher's output goes nowhere, so the channel closes
# when the command ends; it kills only while the pid file is there (no stale pid reused).
WRAPPER = (
    'f="$2"; mkdir -p "$(dirname "$f")"; exec 3<&0; '
    'command -v setsid >/dev/null 2>&1 || exec sh -c "$1"; '
    'setsid sh -c "$1" </dev/null 3<&- & p=$!; echo "$p" > "$f"; '
    '( cat >/dev/null; if [ -f "$f" ]; then kill -TERM -"$p" 2>/dev/null; n=0; '
    'while kill -0 -"$p" 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done; '
    'kill -KILL -"$p" 2>/dev/null; rm -f "$f"; fi ) <&3 >/dev/null 2>&1 & exec 3<&-; '
    'wait "$p"; rc=$?; rm -f "$f"; exit $rc'
)

# stop every group of the pid files given (a glob), wait until gone, print LEFT=<n>
_KILL = (
    'n=0; for f in {files}; do [ -f "$f" ] || continue; {skip}p=$(cat "$f"); '
    'if kill -0 -"$p" 2>/dev/null; then n=$((n+1)); kill -TERM -"$p" 2>/dev/null; i=0; '
    'while kill -0 -"$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; '
    'kill -KILL -"$p" 2>/dev/null; i=0; '
    'while kill -0 -"$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; fi; '
    'rm -f "$f"; done; echo "LEFT=$n"'
)


def safe_tag(tag: str | None) -> str:
    return _SAFE.sub("_", tag or "untagged")[:100]


def new_pidfile(tag: str | None) -> str:
    """A shell word naming this command's pid file (expanded on the host)."""
    return f"{RUN_DIR}/{safe_tag(tag)}.{secrets.token_hex(4)}.pid"


def wrap(command: str, pidfile: str) -> str:
    return f"sh -c {q(WRAPPER)} portal-ops {q(command)} {pidfile}"


def kill_pidfile(pidfile: str) -> str:
    return _KILL.format(files=pidfile, skip="")


def kill_tagged(prefix: str, exclude: str | None = None) -> str:
    """Every leftover command of the runs whose tag starts with ``prefix`` (a deployment's
    id), except those of the run tagged ``exclude`` (the one asking)."""
    skip = f'case "$f" in */{q(safe_tag(exclude))}.*) continue;; esac; ' if exclude else ""
    return _KILL.format(files=f"{RUN_DIR}/{safe_tag(prefix)}*.pid", skip=skip)


def parse_left(output: str) -> int:
    for line in output.splitlines():
        if line.startswith("LEFT="):
            return int(line[5:] or 0)
    return 0
