"""Several steps as one remote script, parsed back into one result per step (script.py).

Runs the composed scripts with the real /bin/sh through the local transport."""

from __future__ import annotations

from backend.script import (
    ScriptParser,
    Step,
    compose,
    compose_parallel,
    first_failure,
    new_nonce,
)
from backend.transport.local import LocalHost


async def run(steps: list[Step]) -> tuple[ScriptParser, list[tuple[str, int, str, str]]]:
    events: list[tuple[str, int, str, str]] = []
    nonce = new_nonce()
    parser = ScriptParser(
        steps,
        nonce,
        lambda i: events.append(("start", i, "", "")),
        lambda i, stream, line: events.append(("line", i, stream, line)),
        lambda i, status: events.append(("end", i, str(status), "")),
    )
    host = LocalHost("local")
    await host.run(compose(steps, nonce), on_line=parser.feed, timeout=20)
    parser.close()
    return parser, events


async def test_each_step_gets_its_own_output_and_status() -> None:
    steps = [
        Step("one", "echo a; echo b >&2"),
        Step("two", "printf 'no newline'"),  # a last line without a newline stays whole
        Step("three", "cd / && pwd; echo ''; echo after-empty"),
    ]
    parser, events = await run(steps)
    results = parser.results("local")
    assert [r.exit_status for r in results] == [0, 0, 0]
    assert (results[0].stdout, results[0].stderr) == ("a", "b")
    assert results[1].stdout == "no newline"
    assert results[2].stdout == "/\n\nafter-empty"  # an empty line inside the output is kept
    starts = [i for kind, i, *_ in events if kind == "start"]
    ends = [i for kind, i, *_ in events if kind == "end"]
    assert starts == ends == [0, 1, 2]


async def test_a_failing_step_stops_the_script_there() -> None:
    steps = [Step("ok", "true"), Step("bad", "echo oops >&2; exit 7"), Step("never", "echo no")]
    parser, events = await run(steps)
    results = parser.results("local")
    assert [r.exit_status for r in results] == [0, 7]
    assert results[1].stderr == "oops"
    assert first_failure(steps, results) == 1
    assert not any(kind == "start" and i == 2 for kind, i, *_ in events)


async def test_may_fail_goes_on_and_steps_keep_their_own_shell() -> None:
    steps = [
        Step("probe", "cd /tmp; exit 4", may_fail=True),
        Step("where", "pwd"),  # the cd above stayed in its own sh -c
    ]
    parser, _ = await run(steps)
    results = parser.results("local")
    assert [r.exit_status for r in results] == [4, 0]
    assert results[1].stdout != "/tmp"
    assert first_failure(steps, results) is None


async def test_output_cannot_forge_a_marker_or_escape_quoting() -> None:
    forged = "@@portal-ops:0000000000000000:1:end:0"
    steps = [
        Step("one", f"echo '{forged}'; echo \"it's $((1+1))\""),
        Step("two", "exit 3"),
    ]
    parser, _ = await run(steps)
    results = parser.results("local")
    assert [r.exit_status for r in results] == [0, 3]
    assert results[0].stdout == f"{forged}\nit's 2"


async def test_parallel_commands_each_get_their_own_result() -> None:
    steps = [
        Step("a", "sleep 0.2; echo slow", may_fail=True),
        Step("b", "echo fast; echo warn >&2; exit 2", may_fail=True),
        Step("c", "printf 'x'", may_fail=True),
    ]
    nonce = new_nonce()
    parser = ScriptParser(steps, nonce, lambda i: None, lambda i, s, line: None, lambda i, s: None)
    await LocalHost("local").run(compose_parallel(steps, nonce), on_line=parser.feed, timeout=20)
    parser.close()
    results = parser.results("local")
    assert [(r.exit_status, r.stdout, r.stderr) for r in results] == [
        (0, "slow", ""),
        (2, "fast", "warn"),
        (0, "x", ""),
    ]
