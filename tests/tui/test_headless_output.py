"""The headless printer's text, on the events of a real run: each failure said once, the
rollback's trigger as one sentence, report paths that exist after the demo exits.

tests/tui/data/demo_break_errors.jsonl holds the events of a real ``portal-ops demo
--headless --break=errors`` run (v2's deployment and its automatic rollback; the events the
printer ignores left out). Before the printer remembered what it had said, the rule's
message came out five times and the rollback's reason was the phase failure quoted whole.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from backend.events import Event, Kind
from tui.commands.printer import EventPrinter

RECORDED = Path(__file__).parent / "data" / "demo_break_errors.jsonl"
RULE = "error_rate > 1.00% on all hosts in 3 window(s)"


def printed(events: list[Event]) -> list[str]:
    out = io.StringIO()
    printer = EventPrinter(out=out)
    for event in events:
        printer(event)
    return out.getvalue().splitlines()


def recorded() -> list[Event]:
    return [Event.from_dict(json.loads(line)) for line in RECORDED.read_text().splitlines()]


def test_a_monitored_failure_is_said_once_and_referred_to_after() -> None:
    lines = printed(recorded())
    assert sum(RULE in line for line in lines) == 1, "\n".join(lines)
    failed = next(line for line in lines if "[9/9] Finalization" in line)
    assert "FAILED" in failed and "rule error-rate (above)" in failed
    phase_incident = next(line for line in lines if "phase 9 (Finalization) failed" in line)
    assert "Hosts already switched: host-1, host-2, host-3" in phase_incident  # new facts stay
    assert not any(line.lstrip().startswith("! CRITICAL rollback of") for line in lines)


def test_the_rollback_line_names_the_rule_and_its_values_in_one_sentence() -> None:
    lines = printed(recorded())
    started = [line for line in lines if line.startswith("Rollback of ")]
    assert len(started) == 1
    assert re.fullmatch(
        r"Rollback of bp-[\w-]+: automatic: rule error-rate \(error_rate [\d.]+% > 1%\)",
        started[0],
    ), started[0]
    assert not any("{" in line or "'action'" in line for line in lines)  # no raw evidence


def test_an_operator_rollback_keeps_the_typed_reason() -> None:
    lines = printed(
        [
            Event(
                Kind.ROLLBACK_STARTED,
                "bp-1",
                run="rollback",
                data={
                    "reason": "checkout returns 500 for EU cards",
                    "trigger": {"kind": "manual", "operator": {"user": "alice", "host": "b"}},
                },
            )
        ]
    )
    assert lines == ["Rollback of bp-1: operator alice@b: checkout returns 500 for EU cards"]


@pytest.mark.slow
def test_headless_demo_text_says_the_failure_once_and_its_reports_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTAL_OPS_DEMO_DIR", str(tmp_path / "demo"))
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", "demo", "--headless", "--break=errors"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = result.stdout
    assert result.returncode == 1, out[-3000:] + result.stderr[-3000:]
    assert sum(RULE in line for line in out.splitlines()) == 1, out
    assert "trigger      automatic: rule error-rate (error_rate" in out
    paths = re.findall(r"(/\S+?\.json)\b", out)
    assert paths, out  # the monitor's and the rollback's reports are named...
    for path in paths:
        assert Path(path).is_file(), f"{path} is gone after the demo exited"  # ...and kept
    kept = re.search(r"^  reports      (\S+)$", out, re.M)
    assert kept and Path(kept[1]).is_dir() and kept[1].startswith(str(tmp_path)), out
