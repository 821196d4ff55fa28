"""Relative judgments: the new release against a reference (the hosts still on the old
release, or the baseline measured before the switch), with an absolute floor.

A loaded machine makes every release slower: an absolute line alone rolls back a healthy
release there. A value is bad only when it is worse than ``factor`` x the reference *and*
past the floor (so 0.2 % errors against 0 % is not a regression). With no reference to
compare to, the absolute ``ceiling`` decides alone. Shared by the batch analysis (engine)
and the post-deployment checks (Q05, Q06), which must not import each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Verdict = Literal["ok", "bad", "inconclusive"]


@dataclass(frozen=True)
class Judgment:
    metric: str
    verdict: Verdict
    value: float | None
    reference: float | None  # what it was compared to (None: the absolute line alone)
    limit: float | None  # the line it had to stay under (or over, for a share)
    why: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def worse_than(
    metric: str,
    value: float | None,
    reference: float | None,
    *,
    factor: float,
    floor: float,
    ceiling: float | None = None,
    unit: str = "",
) -> Judgment:
    """Higher is worse (error rate, latency): bad above ``max(factor x reference, floor)``;
    without a reference, bad above ``ceiling`` (if any)."""
    if value is None:
        return Judgment(metric, "inconclusive", None, reference, None, "no data")
    if reference is None:
        if ceiling is None:
            return Judgment(metric, "inconclusive", value, None, None, "no reference")
        bad = value > ceiling
        return Judgment(
            metric,
            "bad" if bad else "ok",
            value,
            None,
            ceiling,
            f"{value:g}{unit} {'>' if bad else '<='} {ceiling:g}{unit} (absolute, no reference)",
        )
    limit = max(reference * factor, floor)
    bad = value > limit
    return Judgment(
        metric,
        "bad" if bad else "ok",
        value,
        reference,
        limit,
        f"{value:g}{unit} {'>' if bad else '<='} {limit:g}{unit}"
        f" ({factor:g} x reference {reference:g}{unit}, floor {floor:g}{unit})",
    )
