"""Remote commands that die with their session.

Each command runs on the host in a process group of its own (``setsid``), recorded in a pid
file named after the run it belongs to. A watcher reads the session's stdin: when the SSH
channel closes (portal-ops killed, the link lost, a timeout or a cancel closing it), the
watcher gets end-of-file and kills the whole group. A retry or a database rollback first
runs :func:`kill_tagged` / :func:`kill_pidfile`, which stop what is left and wait until it
is gone ("confirmed dead").

Two windows make this hard, and the pid file's protocol closes both:

- The session may end before the command's group exists (a SIGKILL or a timeout while the
  remote shell starts). ``kill -TERM -<pgid>`` of a group that ``setsid`` has not created
  yet hits nothing, and the command then runs on unwatched. So the group id ``p`` is
  signalled both as a group and as a process: before ``setsid`` the process ``p`` is the
  forked shell about to become the group, and it dies; after, the group does.
- A kill may run before the wrapper has started at all (sshd still forking it). The wrapper
  therefore *claims* its pid file first, with an exclusive create (``set -C``), writing its
  own pid; the kill claims the same name with ``cancelled``. Whoever creates the file
  first wins: a wrapper that finds ``cancelled`` never starts its command (exit 125), and a
  kill that finds the wrapper's pid waits until the group id is written (line 2) or the
  wrapper is gone, then kills the group. So "confirmed dead" holds in every window.

Most of the time no group needs making: OpenSSH starts each session's command in a session
of its own, and a login shell that ``exec``s its one command (bash, dash, zsh do) leaves the
wrapper leading that session's group. The wrapper then runs the command in a subshell of
its own, in that group, and writes the group (its own pid) with its claim: no ``setsid``, no
second shell, and no group-less window. Only where the wrapper does not lead its group does
it make one with ``setsid`` as above.

A finished wrapper writes ``done`` over its pid file (the shell's own ``echo``, where ``rm``
would cost the host a process per command); a kill treats ``done`` as nothing to stop, and
one wrapper in 256 sweeps the run dir after its command (``_SWEEP``).
"""

from __future__ import annotations

import re
import secrets

from ..shell import q

# named after the uid: bash and zsh (the usual login shells, which expand this in the
# wrapper's command line) know it without starting ``id``; sh asks ``id``
RUN_DIR = '"${TMPDIR:-/tmp}/portal-ops-run-${UID:-$(id -u)}"'
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
CANCELLED_EXIT = 125  # the wrapper found its pid file claimed by a kill: it never started

# alive "$1": the group "$1", or the process "$1", has a member that is not a zombie (a
# zombie orphan waits for init to reap it, which some containers' init does only slowly)
# and is not the asking process "$me" (a watcher stopping the group it belongs to)
_ALIVE = (
    'alive() { kill -0 -"$1" 2>/dev/null || kill -0 "$1" 2>/dev/null || return 1; '
    "[ -r /proc/self/stat ] || return 0; "
    'for s in /proc/[0-9]*/stat; do { read -r l <"$s"; } 2>/dev/null || continue; '
    '[ "${l%% *}" = "${me:-}" ] && continue; r=${l##*") "}; set -- "$1" $r; '
    '[ "$2" != Z ] && { [ "$4" = "$1" ] || [ "${l%% *}" = "$1" ]; } && return 0; '
    "done; return 1; }; "
)

# stop "$1" (a group id that is also the pid of its leader, possibly not yet a leader):
# TERM to the group and the process, up to 5 s, then KILL to what is left (never to a group
# gone: a watcher stopping its own group would kill itself); 0 when gone
_STOP = _ALIVE + (
    'stop() { kill -TERM -"$1" 2>/dev/null; kill -TERM "$1" 2>/dev/null; i=0; '
    'while alive "$1" && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; alive "$1" || return 0; '
    'kill -KILL -"$1" 2>/dev/null; kill -KILL "$1" 2>/dev/null; i=0; '
    'while alive "$1" && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; '
    '! alive "$1"; }; '
)

# the run dir "$d" swept: the finished commands' pid files (``done``) in one ``rm``, and the
# claims of kills (``cancelled``) a day old (a wrapper never arrives that late) with one
# ``find``: their names are safe words (see ``safe_tag``), the folder may not be
_SWEEP = (
    'sweep() { set --; x=; for s in "$d"/*.pid; do w=; { read -r w <"$s"; } 2>/dev/null; '
    'case "$w" in done) set -- "$@" "$s";; cancelled) x="$x ./${s##*/}";; esac; done; '
    '[ $# -eq 0 ] || rm -f "$@"; '
    '[ -z "$x" ] || { cd "$d" && find $x -prune -mmin +1440 -exec rm -f {} +; }; }; '
)

# what the wrapper and the host's session shell (.session) both define: stop, alive, sweep
SHELL_FUNCTIONS = _STOP + _SWEEP

# $1 the command, $2 the pid file. Line 1 of the pid file: the wrapper's pid (its claim);
# line 2: the command's group id; ``done`` over both once the command has ended. The
# watcher's output goes nowhere, so the channel closes when the command ends; it kills only
# while the pid file still holds the wrapper's claim (no stale pid reused), ignoring the TERM
# it sends its own group and leaving itself out of ``alive``, and marks the file done once
# the group is gone. It reads with the shell's own ``read`` (nothing comes on stdin but its
# end): one fork per command, no ``cat``. The group is the wrapper's own where it leads it
# (``g``, read from /proc with a builtin ``read``), else one that ``setsid`` makes. The
# command runs without the wrapper's functions, variables and arguments. One wrapper in 256
# (its pid file's random part starting ``00``) sweeps the run dir, detached from the
# channel: the command's end is not delayed by it.
WRAPPER = (
    _STOP + _SWEEP + 'c="$1"; f="$2"; d="${f%/*}"; [ -d "$d" ] || mkdir -p "$d"; g=; '
    '{ read -r l </proc/self/stat; } 2>/dev/null && { r=${l##*") "}; r=${r#* }; r=${r#* }; '
    'g=${r%% *}; }; [ "$g" = "$$" ] || g=; '
    'set -C; { printf "%s\\n${g:+%s\\n}" "$$" $g > "$f"; } 2>/dev/null || '
    f'{{ echo "portal-ops: cancelled before it started" >&2; exit {CANCELLED_EXIT}; }}; set +C; '
    'exec 3<&0; if [ -n "$g" ]; then '
    '( unset -f alive stop sweep; unset f d g l r; set --; eval "unset c; $c" ) </dev/null 3<&- & '
    "k=$!; p=$g; else "
    'command -v setsid >/dev/null 2>&1 || { echo "$$" >> "$f"; exec 3<&-; exec sh -c "$c"; }; '
    'setsid sh -c "$c" </dev/null 3<&- & k=$!; p=$k; echo "$p" >> "$f"; fi; '
    '( while read -r x; do :; done; trap "" TERM; { read -r me </proc/self/stat; } 2>/dev/null; '
    'me=${me%% *}; w=; { read -r w <"$f"; } 2>/dev/null; '
    '[ "$w" = "$$" ] && stop "$p" && echo done > "$f" ) <&3 >/dev/null 2>&1 & exec 3<&-; '
    'wait "$k"; rc=$?; echo done > "$f"; '
    'case "$f" in */*.00??????.pid) ( sweep ) </dev/null >/dev/null 2>&1 & ;; esac; exit $rc'
)

# $1 the run dir (expanded by the login shell, which knows $UID: sh would start ``id``); for
# each pid file in it (a glob, or one name to claim): wait for its group id while its
# wrapper starts, stop the group, wait until gone; a finished one (``done``) is left to the
# sweep; print LEFT=<running when asked> ALIVE=<unkillable> CLAIMED=<1: a name claimed
# before its command started, which now never will>
_KILL = (
    _STOP
    + 'r="$1"; n=0; a=0; c=0; @CLAIM@for f in @FILES@; do @CANCEL@[ -f "$f" ] || continue; @SKIP@'
    'j=0; while :; do w=; p=; { read -r w; read -r p; } 2>/dev/null <"$f"; '
    '[ "$w" = cancelled ] || [ -n "$p" ] || [ ! -f "$f" ] && break; '
    '[ -n "$w" ] && ! kill -0 "$w" 2>/dev/null && break; '
    "[ $j -ge 100 ] && break; j=$((j+1)); sleep 0.05; done; "
    '[ "$w" = done ] && continue; '
    'if [ "$w" = cancelled ]; then '
    '[ -n "$(find "$f" -mmin +1440 2>/dev/null)" ] && rm -f "$f"; continue; fi; '
    'if [ -z "$p" ] && [ -n "$w" ] && kill -0 "$w" 2>/dev/null; then a=$((a+1)); continue; fi; '
    'if [ -n "$p" ] && alive "$p"; then n=$((n+1)); '
    'stop "$p" || a=$((a+1)); fi; rm -f "$f"; done; echo "LEFT=$n ALIVE=$a CLAIMED=$c"'
)


def safe_tag(tag: str | None) -> str:
    return _SAFE.sub("_", tag or "untagged")[:100]


def new_pidfile(tag: str | None) -> str:
    """A shell word naming this command's pid file (expanded on the host)."""
    return f"{RUN_DIR}/{safe_tag(tag)}.{secrets.token_hex(4)}.pid"


def wrap(command: str, pidfile: str) -> str:
    return f"sh -c {q(WRAPPER)} portal-ops {q(command)} {pidfile}"


def kill_pidfile(pidfile: str) -> str:
    """Stop the one command of ``pidfile`` (a :func:`new_pidfile` word), whatever point of
    its start it reached: a wrapper not started yet is cancelled (the name is claimed, so
    it never starts)."""
    folder, _, name = pidfile.rpartition("/")
    if folder != RUN_DIR or _SAFE.search(name):
        raise ValueError(f"not a pid file of the run dir: {pidfile!r}")
    return _kill(
        claim='[ -d "$r" ] || mkdir -p "$r"; ',
        files=f'"$r"/{name}',
        cancel='if (set -C; echo cancelled > "$f") 2>/dev/null; then c=1; continue; fi; ',
    )


def kill_tagged(prefix: str, exclude: str | None = None) -> str:
    """Every leftover command of the runs whose tag starts with ``prefix`` (a deployment's
    id), except those of the run tagged ``exclude`` (the one asking)."""
    skip = f'case "$f" in */{q(safe_tag(exclude))}.*) continue;; esac; ' if exclude else ""
    return _kill(files=f'"$r"/{safe_tag(prefix)}*.pid', skip=skip)


def _kill(files: str, claim: str = "", cancel: str = "", skip: str = "") -> str:
    parts = {"@CLAIM@": claim, "@FILES@": files, "@CANCEL@": cancel, "@SKIP@": skip}
    text = _KILL
    for mark, value in parts.items():
        text = text.replace(mark, value)
    # sh whatever the login shell is, as the wrapper; the run dir expanded by the login shell
    return f"sh -c {q(text)} portal-ops {RUN_DIR}"


def parse_claimed(output: str) -> bool:
    """Whether a :func:`kill_pidfile` claimed the name first: its command never started."""
    return re.search(r"\bCLAIMED=1\b", output) is not None


def parse_left(output: str) -> tuple[int, int]:
    """(commands that were still running and were stopped, commands that could not be)."""
    found = dict(re.findall(r"\b(LEFT|ALIVE)=(\d+)", output))
    return int(found.get("LEFT", 0)), int(found.get("ALIVE", 0))
