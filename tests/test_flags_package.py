"""portal-ops-flags, the app side as its own distribution: built offline from this repo,
installed nowhere but a bare directory, used by an app that has its own ``backend``
package, against a real redis-server with a flag published by portal-ops."""

from __future__ import annotations

import fcntl
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
import redis

from backend.flags import FlagService
from tests.fixtures import RedisServer

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "pkgtest"

APP = """
import sys
sys.path[:0] = [{app!r}, {site!r}]
sys.path.extend({deps!r})
import backend  # the app's own package
import portal_ops_flags
from portal_ops_flags import Context, FlagClient
client = FlagClient({url!r}, {prefix!r}, flush_interval=3600)
assert client.start(10), client.status()
on = client.is_enabled("new-checkout", Context(company="AB12A"))
from portal_ops_flags import PortalOpsProvider
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
api.set_provider(PortalOpsProvider(client))
# the targeting key is the company: without one, a rollout has no stickiness field (off)
of = api.get_client().get_boolean_value("new-checkout", False, EvaluationContext("AB12A"))
client.close(flush=False)
leaked = sorted(m for m in sys.modules if m == "backend.flags" or m.startswith("backend.flags."))
print(on, of, backend.WHO, portal_ops_flags.__file__.startswith({site!r}), leaked)
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # setuptools builds in the package's own build/ folder: one build at a time, machine-wide
    # (parallel workers run this module's tests side by side)
    with open(Path(tempfile.gettempdir()) / "portal-ops-flags-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
             "--disable-pip-version-check", "-w", str(out), str(ROOT / "packages/portal-ops-flags")],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    [built] = out.glob("portal_ops_flags-*.whl")
    return built


def test_the_wheel_depends_on_redis_and_mmh3_only(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = next(n for n in names if n.endswith("METADATA"))
        lines = zf.read(meta).decode().splitlines()
    requires = sorted(
        line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist")
    )
    assert requires == [
        "mmh3>=4.1",
        'openfeature-sdk<1,>=0.10; extra == "openfeature"',
        "redis>=5.0",
    ]
    assert "License-Expression: MIT" in lines
    assert not [n for n in names if n.startswith(("backend/", "tui/", "themes/"))]
    assert {"portal_ops_flags/client.py", "portal_ops_flags/provider.py"} <= set(names)


def test_an_app_with_its_own_backend_package_uses_the_flags(
    wheel: Path, fresh_redis: RedisServer, tmp_path: Path, state_dir: Path
) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    app = tmp_path / "app"
    (app / "backend").mkdir(parents=True)
    (app / "backend" / "__init__.py").write_text('WHO = "the-app"\n')
    with FlagService(state_dir / "journal.db", fresh_redis.url, PREFIX) as service:
        service.create("new-checkout")
        service.enable("new-checkout", 100)
    # the app's third-party packages (redis, mmh3, openfeature) from this venv, whose
    # site-packages hold no portal-ops code (an editable install points elsewhere)
    deps = [str(Path(redis.__file__).resolve().parent.parent)]
    assert not (Path(deps[0]) / "backend").exists()
    code = APP.format(app=str(app), site=str(site), deps=deps, url=fresh_redis.url, prefix=PREFIX)
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "the-app", "True", "[]"]
