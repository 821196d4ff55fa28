"""A portal behind a real HAProxy for traffic tests: app processes on loopback (one per
host, each serving its deploy path's ``current`` release), HAProxy in front with an admin
socket, and a git repo whose releases say how the app behaves (``app.json``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import service_missing
from tests.engine.helpers import git, ssh_config
from tests.fixtures import ServiceUnavailable
from tests.fixtures.haproxy import HAProxy
from tests.fixtures.portal_app import PortalApp

GOOD = {"pages": 200, "health": 200}


@dataclass
class Stack:
    root: Path
    apps: dict[str, PortalApp]
    haproxy: HAProxy
    names: list[str] = field(default_factory=list)

    def stop(self) -> None:
        self.haproxy.cleanup()
        for app in self.apps.values():
            app.cleanup()


def seed_release(root: Path, host: str, release: str, spec: dict[str, Any]) -> None:
    """Put ``release`` live on ``host`` by hand (for tests that do not deploy)."""
    directory = root / host / "releases" / release
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "app.json").write_text(json.dumps(spec))
    link = root / host / "current"
    if link.is_symlink():
        link.unlink()
    os.symlink(f"releases/{release}", link)


def start_stack(root: Path, hosts: int = 3) -> Stack:
    names = [f"host-{i}" for i in range(1, hosts + 1)]
    apps: dict[str, PortalApp] = {}
    try:
        for name in names:
            (root / name).mkdir(parents=True, exist_ok=True)
            apps[name] = PortalApp(root / name, root / "apps" / name).start()
        haproxy = HAProxy({n: a.port for n, a in apps.items()}, root / "haproxy").start()
    except ServiceUnavailable as exc:
        for app in apps.values():
            app.cleanup()
        service_missing(str(exc))
    return Stack(root, apps, haproxy, names)


@pytest.fixture
def stack(tmp_path: Path):
    s = start_stack(tmp_path / "portal")
    yield s
    s.stop()


def make_app_repo(root: Path, v2: dict[str, Any], v1: dict[str, Any] = GOOD) -> Path:
    """A repo tagged v1 and v2 whose ``app.json`` is the app's behaviour in that release."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for tag, spec in (("v1", v1), ("v2", v2)):
        (repo / "app.json").write_text(json.dumps({**spec, "version": tag}))
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", tag)
        git(repo, "tag", tag)
    return repo


def stack_config(sshd: Any, stack: Stack, repo: Path, **overrides: Any) -> dict[str, Any]:
    """A deploy config for ``stack``'s hosts (over the test sshd) behind its HAProxy."""
    root = stack.root
    cfg = ssh_config(sshd, root, repo, hosts=len(stack.names))
    for host in cfg["hosts"]:
        host["deploy_path"] = str(root / host["name"])
        host["health_url"] = f"{stack.apps[host['name']].url}/health"
    cfg["portal"]["deploy_path"] = str(root / "host-1")
    cfg["commands"] = {"install": "test -f app.json"}
    cfg["rollout"] = {"batches": ["1", "100%"], "health_timeout": 5}
    cfg["load_balancer"] = {
        "kind": "haproxy",
        "socket": stack.haproxy.socket,
        "backend": stack.haproxy.backend,
        "drain_timeout": 5,
    }
    cfg["state"] = {"dir": str(root / "state")}
    for key, value in overrides.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    return cfg
