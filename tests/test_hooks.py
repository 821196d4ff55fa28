"""``[hooks]``: commands before/after a phase, on this machine or on the hosts (real sshd)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.config import ConfigError, parse_config
from backend.engine import Engine
from backend.events import Kind
from backend.journal import Journal
from tests.engine.helpers import current, make_repo, ssh_config


def engine_for(raw: dict) -> Engine:
    config = parse_config(raw)
    return Engine(config, journal=Journal(Path(config.state.dir) / "journal.db"))


async def test_hooks_run_around_their_phase_local_and_on_hosts(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    local, remote = tmp_path / "local.txt", tmp_path / "remote.txt"
    raw = ssh_config(
        sshd,
        tmp_path,
        repo,
        hooks={
            "before": [
                {
                    "phase": "code",
                    "run": f"echo {{{{phase}}}} {{{{release}}}} $PORTAL_OPS_HOSTS > {local}",
                }
            ],
            "after": [
                {"phase": "switch", "on": "hosts", "run": f"echo {{{{host}}}} >> {remote}"},
                {"phase": "switch", "on": "primary", "run": f"echo primary >> {remote}"},
            ],
        },
    )
    engine = engine_for(raw)
    result = await engine.deploy(revision="v1")
    assert result.ok, result.error
    assert local.read_text().split() == ["code", result.release, "host-1,host-2"]
    assert sorted(remote.read_text().split()) == ["host-1", "host-2", "primary"]
    steps = [
        (e.phase, e.host, e.data["step"], e.data["ok"])
        for e in engine.journal.events(result.deployment_id)
        if e.kind == Kind.STEP_FINISHED and e.data["step"].startswith("hook:")
    ]
    assert ("code", None, "hook:before", True) in steps
    assert ("switch", "host-1", "hook:after", True) in steps
    assert ("switch", "host-2", "hook:after", True) in steps
    # the dry-run's plan shows them, and runs neither
    local.unlink()
    plan = (await engine_for(raw).plan(revision="v2")).render()
    assert "hook:before (on this machine): echo code" in plan
    assert "[run:hook:after] echo host-1 >>" in plan
    assert not local.exists()


async def test_a_failing_hook_fails_its_phase(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    raw = ssh_config(sshd, tmp_path, repo)
    first = await engine_for(raw).deploy(revision="v1")
    assert first.ok, first.error
    verified = tmp_path / "verified.txt"
    raw["hooks"] = {
        "after": [
            {"phase": "switch", "on": "hosts", "run": "echo smoke failed >&2; exit 3"},
            # rollback phases take hooks too: here, on each host once it is verified
            {"phase": "rb-verify", "on": "hosts", "run": f"echo {{{{host}}}} >> {verified}"},
        ]
    }
    result = await engine_for(raw).deploy(revision="v2")
    assert result.outcome == "rolled_back", result.error
    assert sorted(verified.read_text().split()) == ["host-1", "host-2"]
    switch = next(p for p in result.phases if p.name == "switch")
    assert switch.status == "failed" and "hook:after exited 3" in switch.detail
    for host in ("host-1", "host-2"):
        assert current(tmp_path, host) == first.release
    raw["hooks"] = {"before": [{"phase": "validate-pre", "run": "exit 7"}]}
    stopped = await engine_for(raw).deploy(revision="v2")
    assert stopped.outcome == "failed" and "hook:before of validate-pre" in (stopped.error or "")
    for host in ("host-1", "host-2"):
        assert current(tmp_path, host) == first.release


def test_hook_config_problems_name_the_key() -> None:
    raw = {
        "portal": {"repository": "/r.git", "deploy_path": "/srv/p"},
        "hosts": [{"name": "web-1", "address": "127.0.0.1"}],
        "hooks": {
            "before": [{"phase": "swich", "run": "true"}],
            "after": [{"phase": "switch", "run": "curl -d '{{release}}' x", "timeout": "5q"}],
        },
    }
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    text = "\n".join(err.value.problems)
    assert "hooks.before[0].phase: unknown phase 'swich'" in text
    assert "hooks.after[0].timeout: bad duration '5q'" in text
    assert "hooks.after[0].run: placeholder {{release}} is inside quotes" in text
