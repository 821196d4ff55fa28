"""After a crash, another machine (its own state dir, no journal) learns the truth from the
hosts: the crash warning names the hosts already switched and the one left drained, and
``unlock`` shows the dead run's lock from the hosts' lock files and clears it only when told.
portal-ops itself is SIGKILLed; the load balancer is the ``command`` kind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .faults import (
    kill_when,
    processes_with,
    spawn_cli,
    step_started,
    unique_marker,
    wait_until,
    write_toml,
)
from .helpers import make_repo, ssh_config
from .test_deploy_ssh import deploy_v1


async def test_crash_warning_and_unlock_read_the_hosts_from_another_machine(
    sshd, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(
        sshd,
        tmp_path,
        repo,
        load_balancer={"kind": "command", "drain_command": "true", "enable_command": "true"},
        lock={"heartbeat_seconds": 0.2, "lease_seconds": 1},
    )
    await deploy_v1(cfg)
    marker = unique_marker("crash")
    slow = json.loads(json.dumps(cfg))
    # slow on host-2 only: the canary (host-1) is switched and back in the balancer by then
    slow["commands"]["reload"] = f"case \"$PWD\" in */host-2/*) sh -c 'sleep 20' {marker};; esac"
    proc = spawn_cli(write_toml(slow, tmp_path / "slow.toml"), "deploy")
    deployment_id = await kill_when(
        proc, tmp_path / "state" / "journal.db", step_started("reload", "host-2")
    )
    await wait_until(lambda: not processes_with(marker), 15, "the killed run's reload to die")

    other = json.loads(json.dumps(cfg))
    other["state"] = {"dir": str(tmp_path / "state-elsewhere")}
    config_file = write_toml(other, tmp_path / "elsewhere.toml")
    cli = [sys.executable, "-m", "tui.cli", "unlock", "--config", str(config_file)]
    lock = tmp_path / "host-1" / ".portal-ops" / "lock"
    beat = lock / "heartbeat"
    # the host tells a heartbeat's age in whole seconds (a true 1.5 s can read 1): stale by
    # its count (> the 1 s lease) once 2 s have passed
    await wait_until(lambda: time.time() - beat.stat().st_mtime > 2.05, 10, "a stale lease")

    # a deploy there names it first, read from the hosts (through the connections the
    # deployment then uses), before its own first line, and is refused by the dead run's lock
    deploy = [sys.executable, "-m", "tui.cli", "deploy", "--config", str(config_file)]
    refused = subprocess.run(
        deploy,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, in the order written
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    told = [line for line in refused.stdout.splitlines() if f"{deployment_id} did not" in line]
    assert told, refused.stdout
    assert "switched: host-1, host-2" in told[0] and "drained: host-2" in told[0]
    assert refused.stdout.index(told[0]) < refused.stdout.index("Deployment ")
    assert refused.returncode != 0 and lock.exists()

    declined = subprocess.run(cli, input="n\n", capture_output=True, text=True, timeout=60)
    assert declined.returncode == 1, declined.stdout + declined.stderr
    warning = [line for line in declined.stderr.splitlines() if deployment_id in line]
    assert warning, declined.stderr
    assert "switched: host-1, host-2" in warning[0] and "drained: host-2" in warning[0]
    assert f"portal-ops resume {deployment_id}" in warning[0]
    assert deployment_id in declined.stdout and "STALE" in declined.stdout  # the holder
    assert lock.exists()  # left in place without a yes

    done = subprocess.run([*cli, "--yes"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not lock.exists() and not (tmp_path / "host-2" / ".portal-ops" / "lock").exists()
