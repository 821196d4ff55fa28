"""The demo as an operator meets it: notifications go somewhere real (a webhook receiver on
loopback) for every severity, each `demo up` gets its own directory, and with no terminal
the full-screen commands say what to use instead of drawing into a pipe."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from backend.config import parse_config
from backend.events import Event, EventBus, Kind
from backend.notify.catalog import NotifySeverity
from backend.schema import dump
from tests.tui import recorded


def _demo_config(tmp_path: Path) -> object:
    from backend.demo.run import demo_overrides

    raw = dump(recorded.config())
    raw["notify"] = demo_overrides(tmp_path)["notify"]
    return parse_config(raw)


def test_the_demo_routes_every_severity_to_its_local_sink(tmp_path: Path) -> None:
    from backend.demo.run import NOTIFY_CHANNEL

    config = _demo_config(tmp_path)
    for severity in NotifySeverity:
        assert config.notify.route("deployment-success", severity) == [NOTIFY_CHANNEL]


async def test_the_demo_sink_receives_what_the_room_sends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.demo.run import start_notify_sink
    from backend.notify import Notifier

    config = _demo_config(tmp_path)
    sink = start_notify_sink(monkeypatch.setenv)
    try:
        bus = EventBus()
        seen: list[Event] = []
        bus.subscribe(seen.append)
        notifier = Notifier.from_config(config, bus)
        notifier.attach(bus)
        for event in recorded.deployment("done")[:1]:
            bus.emit(event)
        await notifier.aclose(timeout=10)
        received = await asyncio.to_thread(sink.wait_for, 1, 10.0)
        assert received and received[0].json()
        sent = [e for e in seen if e.kind == Kind.NOTIFICATION]
        assert sent and all(e.data.get("ok") for e in sent), [e.data for e in sent]
    finally:
        sink.stop()


def test_each_demo_up_gets_its_own_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.demo.run import demo_root, newest_demo_root

    monkeypatch.delenv("PORTAL_OPS_DEMO_DIR", raising=False)
    monkeypatch.setenv("PORTAL_OPS_STATE_DIR", str(tmp_path / "state"))
    first, second = demo_root(), demo_root()
    assert first != second and first.parent == second.parent
    second.mkdir(parents=True, exist_ok=True)
    (second / "sandbox.json").write_text("{}")
    assert newest_demo_root() == second


@pytest.mark.parametrize("args", [["demo"], ["watch"], ["ui"]])
def test_without_a_terminal_the_room_commands_say_what_to_use(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui.cli import cli

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args)  # CliRunner's output is a pipe, not a terminal
    assert result.exit_code == 2, result.output
    assert "no terminal" in result.output
    assert ("--headless" in result.output) if args == ["demo"] else ("history" in result.output)


@pytest.mark.slow
def test_two_demo_ups_run_side_by_side_and_their_sinks_outlive_the_command(
    tmp_path: Path,
) -> None:
    """`demo up` returns with the sandbox up: its notification receiver (the front's) still
    answers and logs, and a second sandbox gets its own directory, ports and receiver."""
    import json
    import os
    import re
    import subprocess
    import sys
    import urllib.request

    env = {**os.environ, "PORTAL_OPS_STATE_DIR": str(tmp_path / "state")}
    env.pop("PORTAL_OPS_DEMO_DIR", None)
    env.pop("PORTAL_OPS_DEMO_WEBHOOK", None)

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "tui.cli", "demo", *args],
            capture_output=True, text=True, timeout=180, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    roots: list[str] = []
    try:
        hooks = []
        for _ in range(2):
            out = cli("up")
            roots.append(re.search(r"portal-ops demo down (\S+)", out)[1])  # type: ignore[index]
            hooks.append(re.search(r"PORTAL_OPS_DEMO_WEBHOOK=(\S+)", out)[1])  # type: ignore[index]
        assert roots[0] != roots[1] and hooks[0] != hooks[1]
        for root, hook in zip(roots, hooks, strict=True):
            log = Path(root) / "notifications.jsonl"
            request = urllib.request.Request(hook, data=b'{"text": "after up returned"}')
            with urllib.request.urlopen(request, timeout=10) as reply:
                assert reply.status == 200
            assert "after up returned" in json.loads(log.read_text().splitlines()[-1])["body"]
    finally:
        for root in roots:
            cli("down", root)
    assert not any(Path(root).exists() for root in roots)
