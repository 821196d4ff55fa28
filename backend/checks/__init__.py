"""Pre- and post-deployment validation: scored checks, go/no-go, JSON report.

Public API (``from backend.checks import run_validation``)::

    report = await run_validation(config, "pre" | "post", hosts=..., deployment_id=...,
                                  bus=..., release=..., revision=..., since=...)
    report.score, report.decision, report.go, report.reasons, report.checks, report.to_dict()
    report = await validate_run(run, "post", release=..., since=...)  # run: RunContext

Exports load lazily: ``backend.config`` imports ``backend.checks.config`` while it is
itself being imported, so this package must not import the runner (which needs
``backend.config``) at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model import CheckResult, Status
    from .report import ValidationReport
    from .report import load as load_report
    from .runner import run_validation, validate_run

__all__ = [
    "CheckResult",
    "Status",
    "ValidationReport",
    "load_report",
    "run_validation",
    "validate_run",
]

_LAZY = {
    "run_validation": ("runner", "run_validation"),
    "validate_run": ("runner", "validate_run"),
    "ValidationReport": ("report", "ValidationReport"),
    "load_report": ("report", "load"),
    "CheckResult": ("model", "CheckResult"),
    "Status": ("model", "Status"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
