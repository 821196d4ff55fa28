"""The web server's access log, followed live with ``tail -n0 -F`` through Host.run.

One stream per host; every line is parsed on the event loop thread as it arrives, so the
parser is the hot path: the default format (nginx combined + ``$request_time``) is cut
with ``str.find`` instead of a regular expression. Lines are timed by their arrival, not
by ``$time_local`` (one-second resolution, and costly to parse).
"""

from __future__ import annotations

import asyncio
import re
import shlex
from collections.abc import Callable

from ...transport import Host, TransportError
from ..config import COMBINED, COMBINED_TIMED, AccessLogConfig
from ..window import Windows
from . import Recover, Warn

SOURCE = "access_log"
FOREVER = 10 * 365 * 86400.0  # Host.run's timeout for a follower: it ends when cancelled

Parsed = tuple[int, float | None]  # (status, latency in ms or None)
Parser = Callable[[str], Parsed | None]


def parse_combined_timed(line: str) -> Parsed | None:
    """``... [time] "request" status bytes "referer" "agent" request_time``.

    nginx escapes ``"`` inside ``$request`` as ``\\x22``, so the first ``" `` after the
    opening quote ends the request; ``$request_time`` is the last field.
    """
    i = line.find('] "')
    if i < 0:
        return None
    j = line.find('" ', i + 3)
    if j < 0:
        return None
    k = line.rfind(" ")
    try:
        status = int(line[j + 2 : j + 5])
        ms = float(line[k + 1 :]) * 1000.0
    except ValueError:
        return None
    if not 100 <= status <= 599:
        return None
    return status, ms


def parse_combined(line: str) -> Parsed | None:
    """nginx/Apache combined without a latency field: status only."""
    i = line.find('] "')
    if i < 0:
        return None
    j = line.find('" ', i + 3)
    if j < 0:
        return None
    try:
        status = int(line[j + 2 : j + 5])
    except ValueError:
        return None
    if not 100 <= status <= 599:
        return None
    return status, None


_VAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_GROUPS = {
    "status": r"(?P<status>\d{3})",
    "request_time": r"(?P<request_time>[0-9.]+|-)",
}


def log_format_regex(spec: str) -> str:
    """An nginx ``log_format`` spec as a regular expression with the groups we need.

    ``$status`` and ``$request_time`` become named groups; any other variable matches up
    to the character that follows it in the spec (``"$request"`` -> ``[^"]*``).
    """
    parts = ["^"]
    pos = 0
    seen: set[str] = set()
    for match in _VAR.finditer(spec):
        parts.append(re.escape(spec[pos : match.start()]))
        name = match.group(1)
        after = spec[match.end() : match.end() + 1]
        if name in _GROUPS and name not in seen:
            parts.append(_GROUPS[name])
            seen.add(name)
        elif after:
            parts.append(f"[^{re.escape(after)}]*")
        else:
            parts.append(".*")
        pos = match.end()
    parts.append(re.escape(spec[pos:]))
    return "".join(parts)


def regex_parser(pattern: str) -> Parser:
    """A parser from a regex with ``status`` and one of ``request_time`` (seconds),
    ``request_time_ms`` or ``request_time_us`` (Apache ``%D``)."""
    rx = re.compile(pattern)
    groups = rx.groupindex
    scale, group = next(
        (
            (s, g)
            for g, s in (
                ("request_time", 1000.0),
                ("request_time_ms", 1.0),
                ("request_time_us", 1e-3),
            )
            if g in groups
        ),
        (0.0, ""),
    )
    match = rx.match

    def parse(line: str) -> Parsed | None:
        m = match(line)
        if m is None:
            return None
        try:
            status = int(m.group("status"))
        except (TypeError, ValueError):
            return None
        if not 100 <= status <= 599:
            return None
        if not group:
            return status, None
        raw = m.group(group)
        try:
            return status, float(raw) * scale
        except (TypeError, ValueError):
            return status, None

    return parse


def make_parser(config: AccessLogConfig) -> Parser:
    if config.regex:
        return regex_parser(config.regex)
    if config.format == COMBINED_TIMED:
        return parse_combined_timed
    if config.format == COMBINED:
        return parse_combined
    return regex_parser(log_format_regex(config.format))


def tail_command(path: str) -> str:
    """``tail -n0 -F``: only new lines, and it follows the file across log rotation."""
    return f"exec tail -n0 -F -- {shlex.quote(path)}"


class AccessLogFollower:
    """Follows one host's access log into the open window until cancelled.

    When ``tail`` ends or the connection drops, it reports the problem and starts again
    with backoff (lines written in the gap are missed, never counted twice).

    ``Host.run`` keeps every output line of a command in memory until it ends, which a
    follower never does; so the follower starts a fresh ``tail`` every ``recycle_lines``
    lines, bounding that memory (the few milliseconds between the two are missed).
    """

    def __init__(
        self,
        host: Host,
        path: str,
        parser: Parser,
        windows: Windows,
        warn: Warn,
        recover: Recover,
        recycle_lines: int = 100_000,
    ) -> None:
        self.host = host
        self.path = path
        self.parser = parser
        self.windows = windows
        self.warn = warn
        self.recover = recover
        self.recycle_lines = recycle_lines
        self.lines = 0
        self.unparsed = 0
        self.restarts = 0
        self._problem = f"access_log:{host.name}"
        self._flowing = False  # a line arrived since the last (re)start
        self._since_start = 0
        self._recycle = asyncio.Event()

    def on_line(self, stream: str, line: str) -> None:
        if stream != "stdout":  # tail's own complaints: missing file, permission denied
            if line.strip():
                self.warn(f"{self._problem}:stderr", self.host.name, line.strip()[:300])
            return
        if not self._flowing:  # lines prove the follower works: clear an earlier problem
            self._flowing = True
            self.recover(self._problem)
            self.recover(f"{self._problem}:stderr")
        self.lines += 1
        self._since_start += 1
        if self._since_start >= self.recycle_lines:
            self._recycle.set()
        parsed = self.parser(line)
        tally = self.windows.tally(SOURCE, self.host.name)
        if parsed is None:
            if line:
                tally.unparsed += 1
                self.unparsed += 1
            return
        tally.add(parsed[0], parsed[1])

    async def _follow(self) -> str | None:
        """Run one ``tail`` until it ends (a problem to report) or is recycled (None)."""
        self._flowing = False
        self._since_start = 0
        self._recycle.clear()
        command = tail_command(self.path)
        task = asyncio.create_task(
            self.host.run(command, timeout=FOREVER, on_line=self.on_line, retry_safe=True)
        )
        recycle = asyncio.create_task(self._recycle.wait())
        try:
            await asyncio.wait({task, recycle}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            recycle.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task.cancelled():
            self.restarts += 1
            return None
        exc = task.exception()
        if isinstance(exc, TransportError):
            return f"cannot follow {self.path}: {exc}"
        if exc is not None:
            raise exc
        result = task.result()
        return f"tail of {self.path} ended (exit {result.exit_status}): {result.tail(2) or 'no output'}"

    async def run(self) -> None:
        delay = 0.5
        while True:
            message = await self._follow()
            if message is None:
                continue  # recycled: start the next tail at once
            self.warn(self._problem, self.host.name, message)
            if self._flowing:  # it worked for a while: start over with a short delay
                delay = 0.5
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
