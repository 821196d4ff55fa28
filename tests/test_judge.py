"""Relative judgments (backend/judge.py): worse than factor x the reference and past the
floor is bad; with no reference the absolute ceiling decides."""

from backend.judge import worse_than


def test_a_loaded_reference_lifts_the_line_and_the_floor_holds_below() -> None:
    # a slow machine: 541 ms against a 500 ms baseline is fine, 1200 ms is not
    assert worse_than("p95", 541, 500, factor=2, floor=500).verdict == "ok"
    assert worse_than("p95", 1200, 500, factor=2, floor=500).verdict == "bad"
    # a fast machine: 0.2 % errors against 0 % stays under the 1 % floor; 3 % does not
    assert worse_than("errors", 0.2, 0.0, factor=2, floor=1.0).verdict == "ok"
    bad = worse_than("errors", 3.0, 0.0, factor=2, floor=1.0)
    assert bad.verdict == "bad" and bad.limit == 1.0 and "floor 1" in bad.why


def test_without_a_reference_the_ceiling_decides() -> None:
    assert worse_than("p95", 600, None, factor=2, floor=200, ceiling=500).verdict == "bad"
    assert worse_than("p95", 400, None, factor=2, floor=200, ceiling=500).verdict == "ok"
    assert worse_than("p95", 400, None, factor=2, floor=200).verdict == "inconclusive"
    assert worse_than("p95", None, 100, factor=2, floor=200).verdict == "inconclusive"
