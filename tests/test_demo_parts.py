"""The demo sandbox's parts against real processes on 127.0.0.1: the sample portal app and
its manage.py, the load balancer with drain/enable, the load probe, and the sandbox builder.

Releases are installed by hand here (git archive, shared links, ``current``) because the
engine that normally does it is tested elsewhere; every process started is stopped in the
fixture's teardown, even when a test fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from backend.demo.probe import LoadProbe
from backend.demo.sandbox import Sandbox, SandboxHost, pid_alive, port_open

PROJECT = Path(__file__).resolve().parents[1]
ACCESS_LINE = re.compile(
    r"^(?P<addr>\S+) - - \[(?P<time>\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "
    r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" '
    r'"(?P<agent>[^"]*)" (?P<seconds>\d+\.\d{3})$'
)
ERROR_LINE = re.compile(r"^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\] production\.ERROR: ")


@pytest.fixture
def make_sandbox(tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    """Build sandboxes under tmp_path; teardown stops each and checks nothing survived."""
    boxes: list[Sandbox] = []

    def make(hosts: int = 1, scenario: str | None = None) -> Sandbox:
        box = Sandbox(tmp_path / f"sandbox-{len(boxes)}", hosts=hosts, scenario=scenario)
        boxes.append(box)
        box.create()
        return box

    yield make
    leftovers = []
    for box in boxes:
        seen = box.pids()
        box.stop()
        leftovers += [p for p in seen if pid_alive(p)]
    assert not leftovers, f"processes survived stop(): {leftovers}"


def install(box: Sandbox, host: SandboxHost, tag: str, release: str) -> Path:
    """What the engine's phase 4 and 6 do, by hand: export, link shared, switch current."""
    rel = Path(host.deploy_path) / "releases" / release
    rel.mkdir(parents=True)
    tar = subprocess.run(
        ["git", "archive", "--format=tar", tag], cwd=box.repo, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # 3.11.4+
        archive.extractall(rel, **safe)  # type: ignore[arg-type]
    revision = subprocess.run(
        ["git", "rev-parse", f"{tag}^{{commit}}"], cwd=box.repo, capture_output=True, text=True
    ).stdout.strip()
    (rel / "REVISION").write_text(revision + "\n")
    (rel / ".env").symlink_to(host.env_file)
    (rel / "storage").symlink_to(host.storage)
    tmp = Path(host.deploy_path) / ".current.tmp"
    tmp.symlink_to(f"releases/{release}")
    os.replace(tmp, host.current)
    return rel


def manage(rel: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=rel, capture_output=True, text=True, timeout=30
    )
    if ok:
        assert proc.returncode == 0, f"manage.py {args}: {proc.stdout}\n{proc.stderr}"
    return proc


def value(output: str, key: str) -> str:
    """The last ``KEY=VALUE`` line's value."""
    found = [line.split("=", 1)[1] for line in output.splitlines() if line.startswith(key + "=")]
    assert found, f"no {key}= line in:\n{output}"
    return found[-1]


def schema(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute("SELECT type, name, sql FROM sqlite_master"))


def test_sandbox_builds_repo_hosts_and_a_valid_config(make_sandbox: Callable[..., Sandbox]) -> None:
    from backend.config import load_config  # here: the other tests need none of the engine

    box = make_sandbox(hosts=3)
    config = load_config(box.config_path)
    assert [h.name for h in config.hosts] == ["host-1", "host-2", "host-3"]
    assert config.primary_host().name == "host-1"
    assert config.hosts[1].roles == ["web"]
    assert all(h.transport == "local" and h.deploy_path for h in config.hosts)
    assert config.portal.revision == "v2" and config.portal.recipe == "python"
    assert config.portal.version_url == f"{box.url}/version"
    assert config.load_balancer.drain_url == f"{box.url}/_lb/drain/{{backend}}"
    assert config.commands["reload"] == f"{sys.executable} manage.py restart"
    assert config.commands["migrate_rollback"].endswith("rollback --steps {{steps}}")
    assert config.state.dir == str(box.root / "state")
    health = {h.name: h.health_url for h in config.hosts}
    ports = {h.port for h in box.hosts} | {box.lb_port}
    assert len(ports) == 4
    for host in box.hosts:
        assert health[host.name] == f"http://127.0.0.1:{host.port}/up"
        env = host.env_file.read_text()
        assert f"PORT={host.port}\n" in env and f"DATABASE={box.database}\n" in env
        assert (host.storage / "logs").is_dir() and (host.storage / "run").is_dir()

    def show(tag: str, path: str) -> str:
        return subprocess.run(
            ["git", "show", f"{tag}:{path}"], cwd=box.repo, capture_output=True, text=True
        ).stdout

    assert show("v1", "VERSION").strip() == "1" and show("v2", "VERSION").strip() == "2"
    files_v2 = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", "v2"], cwd=box.repo, capture_output=True, text=True
    ).stdout.split()
    assert "migrations/002_create_company_features.sql" in files_v2
    assert "BREAK" not in files_v2 and not any("003_" in f for f in files_v2)
    manifest = json.loads(show("v2", "public/build/manifest.json"))
    assert f"public/build/{manifest['app.css']}" in files_v2
    assert manifest != json.loads(show("v1", "public/build/manifest.json"))

    again = Sandbox.load(box.root)
    assert again.url == box.url and [h.port for h in again.hosts] == [h.port for h in box.hosts]


def test_app_serves_logs_and_restarts_gracefully(make_sandbox: Callable[..., Sandbox]) -> None:
    box = make_sandbox(hosts=1)
    host = box.hosts[0]
    rel = install(box, host, "v1", "r1")
    migrated = manage(rel, "migrate").stdout
    assert value(migrated, "MIGRATIONS_APPLIED") == "1"
    assert value(manage(rel, "status").stdout, "PENDING") == "0"
    pid = int(value(manage(rel, "restart").stdout, "PID"))
    assert box.app_pids() == {"host-1": pid}

    with httpx.Client(base_url=host.url, timeout=5) as client:
        up = client.get("/up")
        assert (up.status_code, up.text) == (200, "OK")
        assert up.headers["x-content-type-options"] == "nosniff"
        home = client.get("/", headers={"User-Agent": "pytest", "Referer": "http://x/"})
        assert "Business Portal" in home.text and "v1" in home.text
        assert client.get("/version").json() == {
            "version": "1",
            "revision": (rel / "REVISION").read_text().strip(),
            "release": "r1",
            "host": "host-1",
        }
        assert "<form" in client.get("/login").text
        companies = client.get("/api/companies").json()
        assert len(companies) == 4 and companies[0]["name"] == "Acme Logistics"
        asset = json.loads((rel / "public/build/manifest.json").read_text())["app.css"]
        assert "Business Portal v1" in client.get(f"/build/{asset}").text
        assert client.get("/build/../VERSION").status_code == 404
        metrics = client.get("/metrics").text
        assert 'http_requests_total{method="GET",path="/up",status="200"} 1.0' in metrics
        assert "http_request_duration_seconds_bucket" in metrics

        manage(rel, "down")
        assert client.get("/").status_code == 503
        assert client.get("/up").status_code == 200
        manage(rel, "up")
        assert client.get("/").status_code == 200

    lines = (host.storage / "logs/access.log").read_text().splitlines()
    parsed = [ACCESS_LINE.match(line) for line in lines]
    assert all(parsed), lines
    home_line = next(m for m in parsed if m and m["request"] == "GET / HTTP/1.1")
    assert (home_line["status"], home_line["agent"], home_line["referer"]) == (
        "200",
        "pytest",
        "http://x/",
    )
    app_log = (host.storage / "logs/app.log").read_text().splitlines()
    assert app_log and all(ERROR_LINE.match(line) for line in app_log)  # the 503

    new_pid = int(value(manage(rel, "restart").stdout, "PID"))
    assert new_pid != pid and not pid_alive(pid)
    assert "stopped gracefully" in (host.storage / "logs/server.log").read_text()
    assert "STOPPED=" in manage(rel, "stop").stdout
    assert not pid_alive(new_pid) and not port_open(host.port)
    assert manage(rel, "stop").stdout.strip() == "NOT_RUNNING"


async def test_drain_under_load_loses_nothing(make_sandbox: Callable[..., Sandbox]) -> None:
    box = make_sandbox(hosts=3)
    releases = {h.name: install(box, h, "v1", "r1") for h in box.hosts}
    manage(releases["host-1"], "migrate")
    for rel in releases.values():
        manage(rel, "restart")
    lb_pid = box.start_load_balancer()
    assert json.loads(box.info_path.read_text())["load_balancer"]["pid"] == lb_pid

    async with httpx.AsyncClient(base_url=box.url, timeout=5) as client:
        seen = [(await client.get("/version")).headers["x-backend"] for _ in range(6)]
        assert sorted(set(seen)) == ["host-1", "host-2", "host-3"]
        head = await client.head("/login")
        assert head.content == b"" and int(head.headers["content-length"]) > 100
        missing = await client.post("/_lb/drain/nope")
        assert missing.status_code == 404 and "error" in missing.json()

        async def served(name: str) -> int:
            status = (await client.get("/_lb/status")).json()
            return next(b["served"] for b in status["backends"] if b["name"] == name)

        async def wait_sent(probe: LoadProbe, more: int) -> None:
            target = probe.stats().sent + more
            while probe.stats().sent < target:
                await asyncio.sleep(0.02)

        probe = LoadProbe(box.url, rate=40, concurrency=4)
        await probe.start()
        try:
            await wait_sent(probe, 10)
            drained = await client.post("/_lb/drain/host-2")
            assert drained.status_code == 200
            assert drained.json() | {"seconds": 0} == {
                "backend": "host-2",
                "state": "drained",
                "in_flight": 0,
                "seconds": 0,
            }
            before = await served("host-2")
            # what a deploy does to a drained host: restart it on the spot
            await asyncio.to_thread(manage, releases["host-2"], "restart")
            await wait_sent(probe, 30)
            assert await served("host-2") == before
            enabled = await client.post("/_lb/enable/host-2")
            assert enabled.json()["state"] == "enabled"
            await wait_sent(probe, 15)
            assert await served("host-2") > before
        finally:
            stats = await probe.stop()
        assert stats.failed == 0, stats.to_dict()
        assert stats.sent >= 55 and stats.by_status.keys() == {"200"}
        assert set(stats.by_backend) == {"host-1", "host-2", "host-3"}
        assert stats.p50_ms > 0 and stats.to_dict()["latency_ms"]["p99"] >= stats.p50_ms

        for name in ("host-1", "host-2", "host-3"):
            assert (await client.post(f"/_lb/drain/{name}")).status_code == 200
        assert (await client.get("/")).status_code == 503
        for name in ("host-1", "host-2", "host-3"):
            await client.post(f"/_lb/enable/{name}")
        assert (await client.get("/")).status_code == 200

        manage(releases["host-3"], "stop")  # a dead upstream is a visible 502, never retried
        answers = [await client.get("/up") for _ in range(3)]
        failed = [r for r in answers if r.headers.get("x-backend") == "host-3"]
        assert len(failed) == 1 and failed[0].status_code == 502
        status = (await client.get("/_lb/status")).json()
        assert next(b for b in status["backends"] if b["name"] == "host-3")["errors"] == 1


def test_failing_migration_and_rollback(make_sandbox: Callable[..., Sandbox]) -> None:
    box = make_sandbox(hosts=1, scenario="migration")
    host = box.hosts[0]
    r1 = install(box, host, "v1", "r1")
    manage(r1, "migrate")
    before = schema(box.database)
    digest = box.database_digest()
    r2 = install(box, host, "v2", "r2")
    assert (r2 / "migrations/003_add_invoice_totals.sql").exists()

    failed = manage(r2, "migrate", ok=False)
    assert failed.returncode != 0 and "invoices" in failed.stderr
    assert value(failed.stdout, "MIGRATIONS_APPLIED") == "1"
    assert value(failed.stdout, "MIGRATION_FAILED") == "003_add_invoice_totals"
    status = manage(r2, "status").stdout
    assert (value(status, "APPLIED"), value(status, "PENDING")) == ("2", "1")
    tables = {row[1] for row in schema(box.database)}
    assert "company_features" in tables and "invoice_totals" not in tables  # 003 all undone

    rolled = manage(r2, "rollback", "--steps", "1").stdout
    assert value(rolled, "ROLLED_BACK") == "1"
    assert schema(box.database) == before and box.database_digest() == digest

    # Rolled back from the old release, which has no file for 002: the stored down SQL is used.
    manage(r2, "migrate", ok=False)
    assert value(manage(r1, "rollback", "--steps", "1").stdout, "ROLLED_BACK") == "1"
    assert schema(box.database) == before
    assert value(manage(r1, "rollback", "--to", "1").stdout, "ROLLED_BACK") == "0"


def test_dump_and_restore_round_trip(make_sandbox: Callable[..., Sandbox], tmp_path: Path) -> None:
    box = make_sandbox(hosts=1)
    host = box.hosts[0]
    rel = install(box, host, "v1", "r1")
    manage(rel, "migrate")
    manage(rel, "restart")
    dump = tmp_path / "backups" / "db.sqlite3"
    out = manage(rel, "dump", str(dump)).stdout
    checksum = value(out, "SHA256")
    assert checksum == hashlib.sha256(dump.read_bytes()).hexdigest()
    original = httpx.get(f"{host.url}/api/companies").json()

    with sqlite3.connect(box.database) as conn:
        conn.execute("DELETE FROM companies WHERE id = 1")
        conn.execute("INSERT INTO companies (name, city) VALUES ('Intruder', 'Nowhere')")
    assert httpx.get(f"{host.url}/api/companies").json() != original

    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database at all" * 100)
    refused = manage(rel, "restore", str(garbage), ok=False)
    assert refused.returncode != 0 and "nothing restored" in refused.stderr
    wrong = manage(rel, "restore", str(dump), "--sha256", "0" * 64, ok=False)
    assert wrong.returncode != 0 and "checksum mismatch" in wrong.stderr

    restored = manage(rel, "restore", str(dump), "--sha256", checksum).stdout  # app running
    assert value(restored, "SHA256") == checksum
    assert httpx.get(f"{host.url}/api/companies").json() == original


def test_health_scenario_breaks_only_version_2(make_sandbox: Callable[..., Sandbox]) -> None:
    box = make_sandbox(hosts=1, scenario="health")
    host = box.hosts[0]
    r1 = install(box, host, "v1", "r1")
    manage(r1, "migrate")
    manage(r1, "restart")
    assert httpx.get(f"{host.url}/up").status_code == 200

    r2 = install(box, host, "v2", "r2")
    assert (r2 / "BREAK").read_text().strip() == "health"
    manage(r2, "migrate")
    restarted = manage(r1, "restart").stdout  # restart follows `current`, wherever it runs
    assert value(restarted, "RELEASE") == "r2"
    assert httpx.get(f"{host.url}/up").status_code == 500
    home = httpx.get(f"{host.url}/")
    assert home.status_code == 200 and "v2" in home.text
    companies = httpx.get(f"{host.url}/api/companies").json()
    assert companies[0]["features"] == ["mobile-navigation"]
    log = (host.storage / "logs/app.log").read_text().splitlines()
    assert any(ERROR_LINE.match(line) and "GET /up answered 500" in line for line in log)


def test_stop_from_another_process_leaves_nothing(make_sandbox: Callable[..., Sandbox]) -> None:
    box = make_sandbox(hosts=2)
    releases = [install(box, h, "v1", "r1") for h in box.hosts]
    manage(releases[0], "migrate")
    for rel in releases:
        manage(rel, "restart")
    box.start_load_balancer()
    pids = box.pids()
    assert len(pids) == 3 and all(pid_alive(p) for p in pids)

    code = "import sys; from backend.demo.sandbox import Sandbox; print(Sandbox.load(sys.argv[1]).stop())"
    out = subprocess.run(
        [sys.executable, "-c", code, str(box.root)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert sorted(json.loads(out)) == pids
    box.stop()  # reaps our own child (the front) and is idempotent
    assert not any(pid_alive(p) for p in pids)
    assert not any(port_open(p) for p in [box.lb_port, *(h.port for h in box.hosts)])
    assert Sandbox.load(box.root).stop() == []
    box.remove()
    assert not box.root.exists()


def test_stop_finishes_requests_in_flight(make_sandbox: Callable[..., Sandbox]) -> None:
    """SIGTERM closes the listening socket, then waits for a request already being read."""
    box = make_sandbox(hosts=1)
    host = box.hosts[0]
    rel = install(box, host, "v1", "r1")
    pid = int(value(manage(rel, "restart").stdout, "PID"))
    with socket.create_connection(("127.0.0.1", host.port), timeout=10) as slow:
        slow.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nemail")
        for _ in range(500):  # the slow request is in progress (the scrape is the second)
            if "http_requests_in_flight 2.0" in httpx.get(f"{host.url}/metrics").text:
                break
        else:
            pytest.fail("the slow request never showed as in flight")
        with ThreadPoolExecutor(1) as pool:
            stopping = pool.submit(manage, rel, "stop")
            for _ in range(500):
                if not port_open(host.port):
                    break
                time.sleep(0.01)
            assert pid_alive(pid) and not stopping.done()  # still finishing our request
            slow.sendall(b"=a@b.c")
            answer = slow.makefile("rb").read()
            stopped = stopping.result().stdout
    assert answer.startswith(b"HTTP/1.1 303 ")
    assert stopped.strip() == f"STOPPED={pid}" and not pid_alive(pid)


def test_deleted_sandbox_leaves_no_orphans(make_sandbox: Callable[..., Sandbox]) -> None:
    """A root removed without stop() (a crashed demo): the front and servers exit by themselves."""
    box = make_sandbox(hosts=1)
    rel = install(box, box.hosts[0], "v1", "r1")
    manage(rel, "restart")
    box.start_load_balancer()
    pids = box.pids()
    assert len(pids) == 2
    shutil.rmtree(box.root)
    for _ in range(1000):
        if not any(pid_alive(p) for p in pids):
            break
        time.sleep(0.01)
    assert not any(pid_alive(p) for p in pids)
