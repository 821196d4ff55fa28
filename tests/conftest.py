"""Shared pytest fixtures: real sshd and Redis on loopback, an isolated state dir.

Fixtures (see tests/fixtures/ for the classes):

- ``sshd``: session-wide :class:`SSHServer`. Do not ``stop()`` it; use ``sshd_private``.
- ``sshd_private``: a fresh sshd of the test's own, for tests that stop/start/break it.
- ``redis_server``: session-wide :class:`RedisServer`, shared and *not* flushed.
- ``fresh_redis``: the same session server, flushed before the test (and after), so the
  test sees an empty Redis; cheap, but never ``stop()`` it.
- ``redis_server_private``: a Redis of the test's own, for tests that stop/start it.
- ``state_dir``: an empty dir set as ``PORTAL_OPS_STATE_DIR`` (and ``XDG_STATE_HOME``
  under it), so no test writes to ~/.local/state.

A missing sshd or redis-server skips the tests that need it, with the reason, on a
developer's machine. With ``CI=true`` or ``PORTAL_OPS_REQUIRE_SERVICES=1`` it fails
them instead, so CI can never go green by silently skipping the real-server tests.
Tests using these fixtures get the ``sshd`` / ``redis`` markers automatically, so
``-m "not sshd"`` deselects them.

The suite is CPU-bound: ``-p tests.fixtures.cpu_profile -n 0`` ranks tests by the CPU they
cost, servers and CLI runs included (see tests/fixtures/cpu_profile.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

# `from tests.fixtures import ...` must work however pytest was started (plain
# `pytest` only puts tests/ itself on sys.path).
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.fixtures import RedisServer, ServiceUnavailable, SSHServer  # noqa: E402


def services_required() -> bool:
    """True in CI (``CI=true``) or with ``PORTAL_OPS_REQUIRE_SERVICES=1``."""
    return (
        os.environ.get("CI", "").lower() == "true"
        or os.environ.get("PORTAL_OPS_REQUIRE_SERVICES", "") == "1"
    )


def service_missing(reason: str) -> NoReturn:
    """Skip locally; fail where services are required, so CI never skips them silently."""
    if services_required():
        pytest.fail(f"{reason}; required here (CI / PORTAL_OPS_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def _start_sshd(tmp: Path | None = None) -> SSHServer:
    try:
        server = SSHServer(root=tmp)
    except ServiceUnavailable as exc:
        reason = str(exc)
    else:
        return server.start()  # installed but broken: an error, never a skip
    service_missing(reason)


def _start_redis(tmp: Path | None = None) -> RedisServer:
    try:
        server = RedisServer(root=tmp)
    except ServiceUnavailable as exc:
        reason = str(exc)
    else:
        return server.start()
    service_missing(reason)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the real servers they use, for ``-m sshd`` / ``-m "not redis"``, and
    run the ``slow`` ones first: parallel workers hand out tests in this order, and a long
    test drawn last would keep one worker busy while the others sit idle."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & {"sshd", "sshd_private"}:
            item.add_marker(pytest.mark.sshd)
        if names & {"redis_server", "fresh_redis", "redis_server_private"}:
            item.add_marker(pytest.mark.redis)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable


@pytest.fixture(scope="session", autouse=True)
def _test_operator() -> Iterator[None]:
    """Give deployments a stable operator name unless the caller chose one."""
    added = "PORTAL_OPS_OPERATOR" not in os.environ
    if added:
        os.environ["PORTAL_OPS_OPERATOR"] = "test-operator"
    yield
    if added:
        os.environ.pop("PORTAL_OPS_OPERATOR", None)


@pytest.fixture(scope="session", autouse=True)
def _private_user_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the suite out of the developer's ~/.local/state and ~/.config: the demo keeps
    its runs' journals there, and a config in ~/.config/portal-ops would be discovered."""
    saved = {k: os.environ.get(k) for k in ("XDG_STATE_HOME", "XDG_CONFIG_HOME")}
    root = tmp_path_factory.mktemp("user-dirs")
    os.environ["XDG_STATE_HOME"] = str(root / "state")
    os.environ["XDG_CONFIG_HOME"] = str(root / "config")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """One real OpenSSH server for the whole run (about 0.2 s to start); shared, keep it up."""
    server = _start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def sshd_private(tmp_path: Path) -> Iterator[SSHServer]:
    """An sshd for this test alone: stop it, restart it, kill its sessions freely."""
    server = _start_sshd(tmp_path / "sshd")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the whole run; shared, so its data is *not* reset."""
    server = _start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def fresh_redis(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The session Redis, emptied (FLUSHALL) before and after this test.

    Cheaper than a server per test; tests that run in sequence never see each other's
    keys. Do not stop it: other tests share it (use ``redis_server_private``).
    """
    if not redis_server.running:  # a test broke the rule; heal rather than cascade
        redis_server.start()
    redis_server.flush()
    yield redis_server
    if redis_server.running:
        redis_server.flush()


@pytest.fixture
def redis_server_private(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for this test alone, for outages: ``stop()``, then ``start()`` again."""
    server = _start_redis(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty state dir in ``PORTAL_OPS_STATE_DIR``; the journal and locks land here."""
    path = tmp_path / "state"
    path.mkdir()
    monkeypatch.setenv("PORTAL_OPS_STATE_DIR", str(path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    return path
