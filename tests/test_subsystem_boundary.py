"""Subsystems never import the engine: checks, flags, monitor and notify take a
``backend.context.RunContext`` and are called through ``backend/engine/adapters/``.

Every import statement counts (module level, inside functions, under TYPE_CHECKING): a lazy
import of the engine is still a dependency on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBSYSTEMS = ("checks", "flags", "monitor", "notify")
FORBIDDEN = "backend.engine"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``tree``, relative ones resolved."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # ``from backend import engine`` / ``from .. import engine``: the names are modules
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def engine_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path)
    found: dict[int, str] = {}  # one row per import statement: its first engine module
    for line, target in imported(tree, name, path.name == "__init__.py"):
        if target == FORBIDDEN or target.startswith(FORBIDDEN + "."):
            found.setdefault(line, target)
    return [f"{path.relative_to(ROOT)}:{line} imports {target}" for line, target in found.items()]


@pytest.mark.parametrize("subsystem", SUBSYSTEMS)
def test_subsystem_never_imports_the_engine(subsystem: str) -> None:
    files = sorted((ROOT / "backend" / subsystem).rglob("*.py"))
    assert files, f"no modules under backend/{subsystem}"
    offenders = [line for path in files for line in engine_imports(path)]
    assert not offenders, "subsystems must not import the engine:\n" + "\n".join(offenders)


def engine_targets(source: str) -> list[str]:
    """The engine modules ``source`` imports, as if it were backend/checks/probe.py."""
    found = imported(ast.parse(source), "backend.checks.probe", False)
    return [t for _, t in found if t == FORBIDDEN or t.startswith(FORBIDDEN + ".")]


@pytest.mark.parametrize(
    "source",
    [
        "from ..engine.lock import held_lock",
        "from .. import engine",
        "import backend.engine.run",
        "def f():\n    from ..engine import Engine",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from backend.engine import x",
    ],
)
def test_the_walker_sees_every_form_of_import(source: str) -> None:
    """Each way of importing the engine is caught: a check that cannot fail proves nothing."""
    assert engine_targets(source)


def test_the_walker_lets_the_context_and_neighbours_through() -> None:
    allowed = (
        "from ..context import RunContext\nfrom .context import Context\nimport backend.engineering"
    )
    assert engine_targets(allowed) == []


def test_the_engine_runs_the_checks_only_through_its_adapter() -> None:
    """One seam: a change in how the checks are called is made in adapters/checks.py."""
    offenders = []
    for path in sorted((ROOT / "backend" / "engine").rglob("*.py")):
        if "adapters" in path.parts:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, target in imported(tree, module_name(path), path.name == "__init__.py"):
            if target == "backend.checks" or target.startswith("backend.checks."):
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not offenders, "call the checks through backend/engine/adapters/checks.py:\n" + (
        "\n".join(offenders)
    )
