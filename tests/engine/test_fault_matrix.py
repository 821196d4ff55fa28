"""The fault matrix against a real sshd (see tests/engine/matrix.py): every scenario
converges after its recovery. One sshd, v1 deployed once and copied per scenario.

The suite runs the representative subset (``Scenario.suite``); bench/fault_matrix.py runs
every scenario."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from .matrix import SCENARIOS, Scenario, deploy_template, run_scenario


@pytest.fixture(scope="module")
def template(sshd: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    root = tmp_path_factory.mktemp("matrix-template")
    cfg, old = asyncio.run(deploy_template(sshd, root))
    return root, cfg, old


SUITE = [s for s in SCENARIOS if s.suite]


@pytest.mark.slow
@pytest.mark.parametrize(
    "scenario",
    SUITE,
    ids=[f"{s.name}-{s.recovery}".replace(" ", "_") for s in SUITE],
)
async def test_fault_converges(sshd, template, tmp_path: Path, scenario: Scenario) -> None:
    root, cfg, old = template
    verdict = await run_scenario(sshd, root, cfg, old, tmp_path / "case", scenario)
    assert verdict.converged, verdict.why
