"""Build step of portal-ops-flags: copy the app-side flag modules into the wheel.

The code lives once, in portal-ops' ``backend/flags/``; apps must not import ``backend``
(their own ``backend`` package would clash), so the wheel carries the modules under
``portal_ops_flags``. They import each other relatively, so they work there unchanged;
the build refuses a module that imports anything outside the set.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODULES = (
    "client",
    "constraints",
    "evaluate",
    "layout",
    "model",
    "provider",
    "strategies",
    "usage",
)
SOURCE = Path(__file__).resolve().parent.parent.parent / "backend" / "flags"


def check_self_contained(path: Path) -> None:
    """Every relative import names a module of the set; nothing imports ``backend``."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level > 1 or (node.level == 1 and node.module not in MODULES):
                raise SystemExit(
                    f"{path}: imports .{'.' * (node.level - 1)}{node.module or ''}, outside"
                    f" {MODULES}; portal-ops-flags would not work without backend"
                )
            if node.level == 0 and (node.module or "").split(".")[0] == "backend":
                raise SystemExit(f"{path}: imports {node.module}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "backend":
                    raise SystemExit(f"{path}: imports {alias.name}")


class BuildWithClient(build_py):
    def run(self) -> None:
        super().run()
        if not SOURCE.is_dir():
            raise SystemExit(
                f"{SOURCE} not found: build portal-ops-flags from a portal-ops checkout"
            )
        target = Path(self.build_lib) / "portal_ops_flags"
        target.mkdir(parents=True, exist_ok=True)
        for name in MODULES:
            source = SOURCE / f"{name}.py"
            check_self_contained(source)
            shutil.copyfile(source, target / f"{name}.py")


setup(cmdclass={"build_py": BuildWithClient})
