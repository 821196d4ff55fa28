"""One remote shell per host, kept open: each command is a frame on its stdin.

An exec channel per command costs the host a forked sshd session, the login shell and the
wrapper's ``sh`` (about 4 ms of host CPU each on a small VM, more than most of a
deployment's steps), and the client a round trip to open it. A deployment runs its phases'
scripts on every host one after another, so each host keeps one session instead: ``sh -s``
started once, reading frames from its stdin. A frame names the command's pid file and
carries the command, shell-quoted; the session claims the pid file exactly as the wrapper
does (:mod:`.remote_group`), runs the command in a subshell in the background with stdin
from ``/dev/null``, and goes back to reading its stdin. When the command ends, its status
follows its output as an end marker (with a random nonce) on both streams.

What the wrapper guarantees holds here too:

- *Commands die with their session.* The session's shell is the watcher: it is blocked
  reading its stdin whenever a command runs, so the end of that stdin (portal-ops killed,
  the link lost, a timeout or a cancel closing the channel) reaches it at once, and its
  EXIT trap stops the session's group while the running command's pid file still holds the
  claim; the run then confirms it dead over a channel of its own (``kill_pidfile``), as a
  wrapped command's does.
- *A kill from anywhere finds it.* The pid file is in the same run dir with the same two
  lines (the claimant, the group to stop); a kill stops the session's group, which ends the
  session too: its next command opens a new one.
- *A kill before the start cancels it.* The claim is an exclusive create; a name a kill
  claimed first says ``cancelled`` and the command never starts (status 125).

The session needs to lead its process group (sshd makes the login shell lead one, and the
usual login shells ``exec`` their one command); where it does not, it says so and exits,
and the host's commands go back to a channel each. Commands that write to stdin, and any
command asked for while the session is busy, also take a channel of their own.
"""

from __future__ import annotations

import asyncio
import codecs
import secrets
from collections import deque
from collections.abc import Callable
from typing import Any

from ..shell import q
from .base import CHUNK
from .remote_group import CANCELLED_EXIT, RUN_DIR, SHELL_FUNCTIONS

MARK = "@@portal-ops-session"

# $1 the run dir (expanded by the login shell, like a wrapped command's pid file). The
# session must lead its group (read from /proc with a builtin ``read``, as the wrapper
# does); it then says ``ready``. ``_po_run`` MARKER NAME COMMAND: claim the pid file NAME,
# run COMMAND in the background without the session's functions, variables and arguments,
# mark the pid file done, print MARKER:<status> on both streams. The EXIT trap (stdin's
# end) stops the group while the last command's claim holds, ignoring the TERM it sends
# itself and leaving itself out of ``alive``, then reaps its last command (whose CPU the
# host then counts as the session's, as it counts a channel's).
_BOOT = (
    SHELL_FUNCTIONS + 'd="$1"; set --; [ -d "$d" ] || mkdir -p "$d"; f=; g=; '
    '{ read -r l </proc/self/stat; } 2>/dev/null && { r=${l##*") "}; r=${r#* }; r=${r#* }; '
    'g=${r%% *}; }; [ "$g" = "$$" ] || { printf \'%s\\n\' "@MARK@:none"; exit 0; }; '
    'trap \'trap "" TERM; w=; [ -z "$f" ] || { read -r w <"$f"; } 2>/dev/null; '
    '[ "$w" = "$$" ] && { me=$$; stop "$$" && echo done > "$f"; }; wait\' EXIT; '
    '_po_run() { f="$d/$2"; set -C; if { printf "%s\\n%s\\n" "$$" "$$" > "$f"; } 2>/dev/null; '
    "then set +C; else set +C; f=; "
    'echo "portal-ops: cancelled before it started" >&2; '
    f"printf '\\n%s:%s\\n' \"$1\" {CANCELLED_EXIT}; "
    f"printf '\\n%s:%s\\n' \"$1\" {CANCELLED_EXIT} >&2; return; fi; "
    '( ( c=$3; unset -f _po_run alive stop sweep; unset d f g l r; set --; eval "unset c; $c" ) '
    '</dev/null; rc=$?; echo done > "$f"; '
    'printf \'\\n%s:%s\\n\' "$1" "$rc"; printf \'\\n%s:%s\\n\' "$1" "$rc" >&2; '
    'case "$f" in */*.00??????.pid) ( sweep ) </dev/null >/dev/null 2>&1 & ;; esac ) & }; '
    "printf '%s\\n' \"@MARK@:ready\"\n"
)

COMMAND = f"exec sh -s {RUN_DIR}"  # the channel's command line, read by the login shell


class SessionUnavailable(Exception):
    """The host's login shell does not leave the session leading its group, or the session
    ended before it said it was ready: this host's commands take a channel each."""


class SessionLost(Exception):
    """The session ended while a command ran (killed, or the link dropped): no status."""


class LineSplitter:
    """A stream read a chunk at a time and split into lines (as ``pump_lines``), the lines
    after a command's end marker kept for the next command."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.lines: deque[str] = deque()
        self.partial = ""
        self.eof = False

    async def next_lines(self) -> list[str] | None:
        """Every whole line read so far (at least one), or None at the end of the stream:
        a chunk's lines at once, not an await per line."""
        if not await self._fill():
            return None
        lines = list(self.lines)
        self.lines.clear()
        return lines

    def put_back(self, lines: list[str]) -> None:
        """Lines read past a command's end: the next command's."""
        self.lines.extendleft(reversed(lines))

    async def next_line(self) -> str | None:
        """The next whole line, or None at the end of the stream."""
        if not await self._fill():
            return None
        return self.lines.popleft()

    async def _fill(self) -> bool:
        """Until a whole line is there (True) or the stream has ended without one."""
        while not self.lines:
            if self.eof:
                return False
            raw = await self.stream.read(CHUNK)
            if not raw:
                self.eof = True
                tail = self.partial + self.decoder.decode(b"", final=True)
                self.partial = ""
                if tail:
                    self.lines.append(tail.rstrip("\r"))
                continue
            text = self.decoder.decode(raw) if isinstance(raw, bytes) else raw
            parts = (self.partial + text).split("\n")
            self.partial = parts.pop()
            self.lines.extend(line.rstrip("\r") for line in parts)
        return True


class RemoteSession:
    """A host's open ``sh -s``: one command at a time (``busy`` says when)."""

    def __init__(self, proc: Any) -> None:
        self.proc = proc
        self.nonce = secrets.token_hex(8)
        self.out = LineSplitter(proc.stdout)
        self.err = LineSplitter(proc.stderr)
        self.lock = asyncio.Lock()
        self.ready = False
        self.dead = False
        proc.stdin.write(_BOOT.replace("@MARK@", f"{MARK}:{self.nonce}"))

    @property
    def busy(self) -> bool:
        return self.lock.locked()

    def usable(self) -> bool:
        if self.dead:
            return False
        channel = getattr(self.proc, "channel", None)
        closing = channel.is_closing() if channel is not None else False
        return not closing and self.proc.exit_status is None and self.proc.exit_signal is None

    async def run(self, pidfile_name: str, command: str, emit: Callable[[str, str], None]) -> int:
        """Run ``command``; each output line to ``emit(stream, line)``; its exit status."""
        marker = f"{MARK}:{self.nonce}:{secrets.token_hex(4)}"
        self.proc.stdin.write(f"_po_run {q(marker)} {q(pidfile_name)} {q(command)}\n")
        if not self.ready:
            await self._wait_ready()
        statuses = await asyncio.gather(
            self._pump(self.out, "stdout", marker, emit),
            self._pump(self.err, "stderr", marker, emit),
        )
        return statuses[0]

    async def _wait_ready(self) -> None:
        """Until the boot's word. Lines before it are the login shell's own (an rc file
        that prints): not a command's output. Ended before it, the session ran nothing."""
        ready, none = f"{MARK}:{self.nonce}:ready", f"{MARK}:{self.nonce}:none"
        while True:
            line = await self.out.next_line()
            if line == ready:
                self.ready = True
                return
            if line == none or line is None:
                self.dead = True
                why = "does not lead its process group" if line else "ended before it started"
                raise SessionUnavailable(f"the session {why}")

    async def _pump(
        self, lines: LineSplitter, name: str, marker: str, emit: Callable[[str, str], None]
    ) -> int:
        """This command's lines of one stream, up to its end marker, each passed on as it
        arrives. The marker's leading newline ends a last line printed without one and is
        no line of its own: only an empty line waits for the next one to tell."""
        held = False  # an empty line waits
        prefix = marker + ":"
        while True:
            batch = await lines.next_lines()
            if batch is None:
                self.dead = True
                raise SessionLost("the session ended while the command ran")
            for index, line in enumerate(batch):
                if line.startswith(prefix) and line[len(prefix) :].isdigit():
                    lines.put_back(batch[index + 1 :])
                    return int(line[len(prefix) :])
                if held:
                    emit(name, "")
                held = not line
                if line:
                    emit(name, line)

    def close(self) -> None:
        """Stdin's end: the session exits, stopping the command still running (if any)."""
        self.dead = True
        try:
            self.proc.stdin.write_eof()
        except Exception:
            pass
        self.proc.close()

    async def end(self, timeout: float = 2.0) -> None:
        """Stdin's end, then the session's own (a connection closed at once leaves the shell
        to finish as an orphan of sshd's, its commands' CPU off the session's count)."""
        self.dead = True
        try:
            self.proc.stdin.write_eof()
            await asyncio.wait_for(self.proc.wait_closed(), timeout)
        except Exception:
            pass
        self.proc.close()
