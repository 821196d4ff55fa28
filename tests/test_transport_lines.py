"""A command's output is read in chunks and split into lines here: one read per chunk,
not one per line, with the same lines a line-by-line reader gave (a line cut across
chunks, a character cut across them, ``\\r\\n``, empty lines, a last line without its
newline) and no limit on a line's length."""

from __future__ import annotations

import asyncio
import contextlib

from backend.transport.base import pump_lines
from backend.transport.local import LocalHost
from tests.engine.faults import ssh_host
from tests.fixtures.sshd import SSHServer


class Chunks:
    """A stream that hands out exactly the given chunks, then the end (b"" or "")."""

    def __init__(self, chunks: list[bytes] | list[str], end: bytes | str = "") -> None:
        self.chunks: list[bytes | str] = list(chunks)
        self.end = end
        self.reads = 0

    async def read(self, n: int = -1) -> bytes | str:
        self.reads += 1
        await asyncio.sleep(0)  # as a real stream may, between chunks
        return self.chunks.pop(0) if self.chunks else self.end


def _stream(chunks: list[bytes] | list[str]) -> Chunks:
    return Chunks(chunks, b"" if chunks and isinstance(chunks[0], bytes) else "")


async def _pump(stream: Chunks) -> tuple[list[str], list[tuple[str, str]]]:
    sink: list[str] = []
    seen: list[tuple[str, str]] = []
    await pump_lines(stream, "stdout", sink, lambda name, line: seen.append((name, line)))
    return sink, seen


EXPECTED = ["one", "two", "", "thr€e", "four", "a" * 5000, "last"]


async def test_text_chunks_cut_anywhere_give_the_same_lines() -> None:
    text = "one\ntwo\r\n\nthr€e\nfour\r\n" + "a" * 5000 + "\nlast"
    for size in (1, 2, 3, 7, 64, 4096, len(text)):
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        sink, seen = await _pump(_stream(chunks))
        assert sink == EXPECTED, size
        assert seen == [("stdout", line) for line in EXPECTED], size


async def test_byte_chunks_cut_inside_a_character_give_the_same_lines() -> None:
    data = ("one\ntwo\r\n\nthr€e\nfour\r\n" + "a" * 5000 + "\nlast").encode()
    for size in (1, 2, 5, 13, 4096, len(data)):  # 1 and 2 cut "€" (3 bytes) apart
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        sink, _ = await _pump(_stream(chunks))
        assert sink == EXPECTED, size
    sink, _ = await _pump(_stream([b"bad \xff byte\n", b"end\n"]))
    assert sink == ["bad \ufffd byte", "end"]


async def test_one_read_per_chunk_not_per_line() -> None:
    lines = [f"line {i}" for i in range(500)]
    stream = _stream(["\n".join(lines) + "\n"])
    sink, _ = await _pump(stream)
    assert sink == lines
    assert stream.reads == 2  # the chunk, then the end


async def test_nothing_or_only_a_newline() -> None:
    assert (await _pump(_stream([])))[0] == []
    assert (await _pump(_stream(["\n"])))[0] == [""]
    assert (await _pump(_stream(["x\r"])))[0] == ["x"]
    assert (await _pump(_stream([b"\r"])))[0] == [""]


# a line longer than any reader's buffer (asyncio's StreamReader stops at 64 KiB), then a
# \r\n line and a last line without its newline
LONG = "head -c 300000 /dev/zero | tr '\\0' x; printf '\\nshort\\r\\n\\nlast'"


async def test_long_lines_and_a_last_partial_line_on_this_machine() -> None:
    result = await LocalHost("local").run(LONG, timeout=30)
    assert result.ok, result.stderr
    assert result.stdout.split("\n") == ["x" * 300000, "short", "", "last"]


async def test_long_lines_and_a_last_partial_line_over_ssh(sshd: SSHServer) -> None:
    seen: list[str] = []
    host = ssh_host(sshd)
    try:
        result = await host.run(LONG, timeout=30, on_line=lambda _s, line: seen.append(line))
    finally:
        await host.close()
    assert result.ok, result.stderr
    assert result.stdout.split("\n") == ["x" * 300000, "short", "", "last"]
    assert [len(line) for line in seen] == [300000, 5, 0, 4]


async def test_a_line_is_reported_when_it_arrives_not_when_the_command_ends() -> None:
    """A follower (``tail -F``) sees each line as it comes: a read returns what has
    arrived, it does not wait for a full chunk or the end."""
    first = asyncio.Event()

    def on_line(_stream: str, line: str) -> None:
        if line == "first":
            first.set()

    run = asyncio.create_task(
        LocalHost("local").run("echo first; sleep 30; echo late", on_line=on_line, timeout=60)
    )
    try:
        await asyncio.wait_for(first.wait(), 10)
        assert not run.done()
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
