"""A host record is appended, one version after the other, by the shell itself: whatever
point a write is cut at (a kill between the shell's writes), the probe reads the last
version written whole, and a record written whole (by hand, or by a version that replaced
the file) still reads."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from backend.engine.hoststate import write_record
from backend.engine.layout import Layout, parse_probe


def probe_records(layout: Layout) -> list[dict]:
    out = subprocess.run(
        ["sh", "-c", layout.probe()], capture_output=True, text=True, check=True, timeout=20
    )
    return parse_probe(out.stdout).records


def write(layout: Layout, record: dict) -> None:
    subprocess.run(["sh", "-c", write_record(layout.meta, record)], check=True, timeout=20)


def test_a_write_cut_at_any_byte_leaves_the_version_before(tmp_path: Path) -> None:
    layout = Layout(str(tmp_path / "app"))
    first = {"deployment_id": "d1", "status": "running", "operator": {"name": "a}"}}
    second = first | {"status": "succeeded", "note": "x\ny } {"}
    write(layout, first)
    path = Path(layout.meta) / "deployments" / "d1.json"
    one = path.read_bytes()
    write(layout, second)
    both = path.read_bytes()
    assert probe_records(layout) == [second]
    for cut in range(len(one), len(both)):  # every prefix of the second version's bytes
        path.write_bytes(both[:cut])
        got = probe_records(layout)
        assert got == ([second] if cut == len(both) - 1 else [first]), cut
    # a third version after a cut-off second still starts a line of its own
    path.write_bytes(both[: len(one) + 40])
    third = first | {"status": "failed"}
    write(layout, third)
    assert probe_records(layout) == [third]


def test_a_first_write_cut_off_is_no_record(tmp_path: Path) -> None:
    layout = Layout(str(tmp_path / "app"))
    write(layout, {"deployment_id": "d1", "status": "running"})
    path = Path(layout.meta) / "deployments" / "d1.json"
    whole = path.read_bytes()
    for cut in range(1, len(whole) - 1):
        path.write_bytes(whole[:cut])
        assert probe_records(layout) == [], cut


def test_records_written_whole_still_read(tmp_path: Path) -> None:
    """One line (a version that renamed a whole file into place), and one written by hand
    over several lines, beside an appended one."""
    layout = Layout(str(tmp_path / "app"))
    records = Path(layout.meta) / "deployments"
    records.mkdir(parents=True)
    (records / "d1.json").write_text(json.dumps({"deployment_id": "d1", "n": 1}) + "\n")
    (records / "d2.json").write_text('{"deployment_id":\n "d2",\n "n": 2}')
    write(layout, {"deployment_id": "d3", "n": 3})
    got = sorted(probe_records(layout), key=lambda r: r["deployment_id"])
    assert got == [{"deployment_id": f"d{i}", "n": i} for i in (1, 2, 3)]


def test_a_version_appended_to_a_record_written_whole_reads(tmp_path: Path) -> None:
    """A deployment recorded by a version that wrote records whole, then rolled back or
    resumed by this one: the new versions append to that file. The last one ended reads;
    one cut off leaves the record written whole."""
    layout = Layout(str(tmp_path / "app"))
    records = Path(layout.meta) / "deployments"
    records.mkdir(parents=True)
    path = records / "d1.json"
    old = {"deployment_id": "d1", "status": "running"}
    path.write_text(json.dumps(old) + "\n")
    whole = path.read_bytes()
    new = old | {"status": "rolling_back"}
    write(layout, new)
    assert probe_records(layout) == [new]
    appended = path.read_bytes()
    for cut in range(len(whole), len(appended) - 1):
        path.write_bytes(appended[:cut])
        assert probe_records(layout) == [old], cut
