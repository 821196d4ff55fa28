"""Pre-deployment checks (P01..P15), each passing and failing against real things on
loopback: sshd, git, redis-server, a TLS server, an HTTP API, the real filesystem."""

# ruff: noqa: F811  (pytest fixtures imported from tests.test_checks_support)
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from backend.checks import run_validation
from backend.config import parse_config
from backend.events import Event, EventBus, Kind
from backend.journal import Journal
from backend.lockowner import redis_key
from backend.transport import make_host
from tests.fixtures import RedisServer, SSHServer
from tests.test_checks_support import (  # noqa: F401
    PortalApp,
    git_repo,
    make_config,
    portal_app,
    rows,
    status,
    tls_app,
    tls_ca,
)


def ssh_config(tmp_path: Path, sshd: SSHServer, known_hosts: Path | None = None, **validation):
    deploy = tmp_path / "app"
    deploy.mkdir(exist_ok=True)
    raw = {
        "portal": {
            "repository": str(validation.pop("repository", tmp_path / "none")),
            "deploy_path": str(deploy),
        },
        "hosts": [
            {
                "name": "web-1",
                "address": sshd.host,
                "port": sshd.port,
                "user": sshd.user,
                "roles": ["web", "primary"],
            }
        ],
        "ssh": {
            "known_hosts": str(known_hosts or sshd.known_hosts),
            "identity_files": [str(sshd.client_key)],
            "use_agent": False,
            "connect_timeout": 5,
            "max_reconnects": 0,
        },
        "state": {"dir": str(tmp_path / "state")},
        "validation": {
            "timeout": 10,
            "load_warn_above": 1000,
            "load_fail_above": 1000,
            "memory_warn_above": 100,
            "memory_fail_above": 100,
            "disk_free_warn_below": 0,
            "disk_free_fail_below": 0,
            **validation,
        },
    }
    return parse_config(raw, "test.toml")


async def test_pre_over_real_ssh_passes_and_emits_events(
    tmp_path: Path, sshd: SSHServer, git_repo: tuple[Path, str]
) -> None:
    config = ssh_config(tmp_path, sshd, repository=git_repo[0])
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    report = await run_validation(config, "pre", bus=bus, deployment_id="bp-test-1")
    for check_id in ("P01", "P02", "P06", "P07", "P08", "P15"):
        assert status(report, check_id) == "pass", rows(report, check_id)
    assert rows(report, "P01")[0].value == "verified"
    assert rows(report, "P02")[0].value == git_repo[1][:12]
    assert status(report, "P11") in ("pass", "warn")  # the backup dir is created on first use
    assert report.go and report.decision == "go", report.reasons
    results = [e for e in events if e.kind == Kind.CHECK_RESULT]
    summary = [e for e in events if e.kind == Kind.CHECK_SUMMARY]
    assert len(results) == len(report.checks) and len(summary) == 1
    assert {e.run for e in events} == {"validate"}
    assert {e.phase for e in events} == {"validate-pre"}
    assert summary[0].data["decision"] == "go" and summary[0].data["counts"]["pass"] >= 6
    assert report.path is not None and report.path.name == "bp-test-1.pre.json"
    assert json.loads(report.path.read_text())["decision"] == "go"


async def test_host_key_mismatch_is_a_critical_failure(tmp_path: Path, sshd: SSHServer) -> None:
    wrong = sshd.wrong_known_hosts(tmp_path / "known_hosts.wrong")
    config = ssh_config(tmp_path, sshd, known_hosts=wrong)
    report = await run_validation(config, "pre", only=["P01", "P06", "P07"])
    (p01,) = rows(report, "P01")
    assert p01.status == "fail" and p01.critical and "host key mismatch" in p01.message
    assert status(report, "P06") == "error"  # never measured on a host it refused
    assert report.decision == "no-go"
    assert report.reasons[0].startswith("critical check P01")


async def test_engine_hosts_are_reused_and_left_open(tmp_path: Path, sshd: SSHServer) -> None:
    config = ssh_config(tmp_path, sshd)
    host = make_host(config, config.hosts[0])
    await host.connect()
    try:
        report = await run_validation(config, "pre", hosts={"web-1": host}, only=["P01", "P06"])
        assert status(report, "P01") == "pass" and status(report, "P06") == "pass"
        assert (await host.run("echo still-open")).stdout == "still-open"
    finally:
        await host.close()


async def test_revision_fetchable(tmp_path: Path, git_repo: tuple[Path, str]) -> None:
    repo, sha = git_repo
    config = make_config(tmp_path, portal={"repository": str(repo)})
    assert status(await run_validation(config, "pre", only=["P02"]), "P02") == "pass"
    by_sha = await run_validation(config, "pre", only=["P02"], revision=sha)
    assert status(by_sha, "P02") == "pass"
    for missing in ("no-such-branch", "0" * 40):
        report = await run_validation(config, "pre", only=["P02"], revision=missing)
        assert status(report, "P02") == "fail", rows(report, "P02")
    assert not report.go


async def test_quality_gate_database_and_servers(tmp_path: Path) -> None:
    good = make_config(
        tmp_path,
        validation={
            "quality_gate": "echo 'No errors'",
            "database": {"command": "true", "cwd": "."},
            "server_commands": [
                {"command": "true", "cwd": "."},
                {"command": "echo active", "cwd": ".", "expect": "^active$"},
            ],
        },
    )
    report = await run_validation(good, "pre", only=["P03", "P09", "P12"])
    assert [status(report, c) for c in ("P03", "P09", "P12")] == ["pass"] * 3
    bad = make_config(
        tmp_path,
        validation={
            "quality_gate": "echo 'Found 3 errors'; exit 1",
            "database": {"command": "false", "cwd": "."},
            "server_commands": [
                {"command": "true", "cwd": "."},
                {"command": "echo inactive", "cwd": ".", "expect": "^active$"},
            ],
        },
    )
    report = await run_validation(bad, "pre", only=["P03", "P09", "P12"])
    assert [status(report, c) for c in ("P03", "P09", "P12")] == ["fail"] * 3
    assert "Found 3 errors" in rows(report, "P03")[0].message


async def test_probe_in_a_missing_release_dir_is_an_error(tmp_path: Path) -> None:
    config = make_config(tmp_path, validation={"database": "true"})  # cwd: current, absent
    report = await run_validation(config, "pre", only=["P09"])
    (p09,) = rows(report, "P09")
    assert p09.status == "error" and "no directory" in p09.message


async def test_unconfigured_checks_are_skipped_with_a_reason(tmp_path: Path) -> None:
    report = await run_validation(make_config(tmp_path), "pre")
    for check_id in ("P03", "P04", "P05", "P09", "P10", "P12", "P13", "P14"):
        (only,) = rows(report, check_id)
        assert only.status == "skipped" and only.message.startswith("no "), only


async def test_coverage_report(tmp_path: Path) -> None:
    clover = tmp_path / "clover.xml"
    clover.write_text(
        '<coverage><project><metrics statements="100" coveredstatements="65"/></project></coverage>'
    )
    low = tmp_path / "cobertura.xml"
    low.write_text('<coverage line-rate="0.42"></coverage>')
    for path, expected in ((clover, "pass"), (low, "fail"), (tmp_path / "missing.xml", "error")):
        config = make_config(tmp_path, validation={"coverage_report": str(path)})
        report = await run_validation(config, "pre", only=["P04"])
        assert status(report, "P04") == expected, rows(report, "P04")
    (missing,) = rows(report, "P04")
    assert "cannot read the coverage report" in missing.message and not report.go


def _audit_config(tmp_path: Path, name: str, payload: object) -> object:
    path = tmp_path / name
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return make_config(tmp_path, validation={"audit": f"cat {path}; exit 1"})


async def test_dependency_audit(tmp_path: Path) -> None:
    def adv(severity: str | None) -> dict:
        return {
            "advisories": {
                "laravel/framework": [
                    {
                        "advisoryId": "PKSA-1",
                        "packageName": "laravel/framework",
                        "cve": "CVE-2025-1",
                        "title": "RCE",
                        "severity": severity,
                    }
                ]
            }
        }

    cases = [
        ("clean.json", {"advisories": {}}, "pass"),
        ("critical.json", adv("critical"), "fail"),
        ("high.json", adv("high"), "warn"),
        (
            "pip.json",
            {"dependencies": [{"name": "jinja2", "version": "2", "vulns": [{"id": "PYSEC-1"}]}]},
            "fail",
        ),
        ("table.txt", "Found 1 security vulnerability advisory", "error"),
    ]
    for name, payload, expected in cases:
        report = await run_validation(_audit_config(tmp_path, name, payload), "pre", only=["P05"])
        assert status(report, "P05") == expected, (name, rows(report, "P05"))
        if expected == "fail":
            assert rows(report, "P05")[0].critical and report.decision == "no-go"


async def test_disk_memory_load_thresholds(tmp_path: Path) -> None:
    relaxed = make_config(
        tmp_path,
        validation={
            "disk_free_warn_below": 0,
            "disk_free_fail_below": 0,
            "memory_warn_above": 100,
            "memory_fail_above": 100,
            "load_warn_above": 1000,
            "load_fail_above": 1000,
        },
    )
    report = await run_validation(relaxed, "pre", only=["P06", "P07", "P08"])
    assert [status(report, c) for c in ("P06", "P07", "P08")] == ["pass"] * 3
    # thresholds that make the real filesystem and memory look (nearly) full
    strict = make_config(
        tmp_path,
        validation={
            "disk_free_warn_below": 100,
            "disk_free_fail_below": 99.99,
            "memory_warn_above": 0,
            "memory_fail_above": 0,
            "load_warn_above": 0,
            "load_fail_above": 0,
        },
    )
    report = await run_validation(strict, "pre", only=["P06", "P07"])
    (disk,) = rows(report, "P06")
    assert disk.status == "fail" and disk.unit == "% free" and disk.critical
    assert status(report, "P07") == "fail"
    assert report.decision == "no-go"


async def test_redis_ping_and_a_stopped_redis(
    tmp_path: Path, redis_server_private: RedisServer
) -> None:
    config = make_config(
        tmp_path,
        redis={"url": redis_server_private.url},
        validation={"redis_command": {"command": "echo PONG", "cwd": ".", "expect": "PONG"}},
    )
    report = await run_validation(config, "pre", only=["P10"])
    assert [r.status for r in rows(report, "P10")] == ["pass", "pass"]
    assert rows(report, "P10")[0].host == "portal-ops"
    redis_server_private.stop()
    report = await run_validation(config, "pre", only=["P10"])
    ping = rows(report, "P10")[0]
    assert ping.status == "fail" and "no PONG" in ping.message and not report.go


async def test_redis_password_never_shown(
    tmp_path: Path, redis_server_private: RedisServer
) -> None:
    with redis_server_private.client() as admin:
        admin.config_set("requirepass", "right-pass")
    base = f"127.0.0.1:{redis_server_private.port}/0"
    for password, expected in (("s3cret-pass", "fail"), ("right-pass", "pass")):
        config = make_config(tmp_path, validation={"redis_url": f"redis://:{password}@{base}"})
        report = await run_validation(config, "pre", only=["P10"])
        assert status(report, "P10") == expected, rows(report, "P10")
        assert password not in report.to_json() and "***" in rows(report, "P10")[0].message


async def test_backup_dir(tmp_path: Path) -> None:
    backups = tmp_path / "app" / ".portal-ops" / "backups"
    (backups / "bp-20260101-120000-aaaaaa").mkdir(parents=True)
    (backups / "bp-20260101-120000-aaaaaa" / "db.sql").write_text("x" * 4096)
    newest = backups / "bp-20261201-120000-bbbbbb"  # last by name: ids sort by time
    newest.mkdir()
    (newest / "db.sql").write_text("x" * 81920)
    (backups / "zz-a-file").write_text("not a backup folder")
    config = make_config(tmp_path, validation={"backup_min_free_mb": 1})
    report = await run_validation(config, "pre", only=["P11"])
    assert status(report, "P11") == "pass", rows(report, "P11")
    (p11,) = rows(report, "P11")
    assert 80 <= p11.meta["newest_backup_kb"] < 200, p11.meta
    no_room = make_config(tmp_path, validation={"backup_min_free_mb": 10**12})
    assert status(await run_validation(no_room, "pre", only=["P11"]), "P11") == "fail"
    if os.geteuid() != 0:  # root writes anywhere
        backups.chmod(0o555)
        try:
            report = await run_validation(config, "pre", only=["P11"])
            (p11,) = rows(report, "P11")
            assert p11.status == "fail" and "not writable" in p11.message
        finally:
            backups.chmod(0o755)


async def test_tls_certificate_days_and_chain(tmp_path: Path, tls_ca) -> None:
    ca_file = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    soon, later = tls_app(tls_ca, days=10), tls_app(tls_ca, days=365)
    try:
        for app, expected in ((soon, "fail"), (later, "pass")):
            config = make_config(
                tmp_path, portal={"public_url": app.url}, validation={"ca_file": str(ca_file)}
            )
            report = await run_validation(config, "pre", only=["P13"])
            (p13,) = rows(report, "P13")
            assert p13.status == expected, p13
            assert p13.unit == "days" and abs(p13.value - (10 if expected == "fail" else 365)) < 1.5
        assert not report.go or expected == "pass"
        # the same server without its CA in the trust store: chain not verified
        config = make_config(
            tmp_path,
            validation={"tls_target": f"127.0.0.1:{later.port}", "tls_server_name": "localhost"},
        )
        report = await run_validation(config, "pre", only=["P13"])
        (p13,) = rows(report, "P13")
        assert p13.status == "fail" and "chain not verified" in p13.message
        assert p13.value > 300  # days still read from the certificate
    finally:
        soon.stop()
        later.stop()


async def test_api_key_probes_never_show_the_key(
    tmp_path: Path, portal_app: PortalApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = {"name": "cal.com", "url": f"{portal_app.url}/api/me", "key_env": "TEST_CALCOM_KEY"}
    config = make_config(tmp_path, validation={"api_probes": [probe]})
    monkeypatch.setenv("TEST_CALCOM_KEY", "good-key")
    report = await run_validation(config, "pre", only=["P14"])
    assert status(report, "P14") == "pass"
    monkeypatch.setenv("TEST_CALCOM_KEY", "revoked-key-123")
    report = await run_validation(config, "pre", only=["P14"])
    (p14,) = rows(report, "P14")
    assert p14.status == "fail" and "rejected (401)" in p14.message
    assert "revoked-key-123" not in report.to_json()
    monkeypatch.delenv("TEST_CALCOM_KEY")
    report = await run_validation(config, "pre", only=["P14"])
    assert status(report, "P14") == "error" and "TEST_CALCOM_KEY is not set" in report.to_json()


async def test_other_deployment_lock_and_journal(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    lock = tmp_path / "app" / ".portal-ops" / "lock"
    lock.mkdir(parents=True)
    owner = {
        "deployment_id": "bp-other",
        "operator": "alice@bastion",
        "token": "t0ken-xyz",
        "since": time.time(),
        "pid": 1,
        "machine": "bastion",
    }
    (lock / "owner.json").write_text(json.dumps(owner))
    report = await run_validation(config, "pre", only=["P15"])
    host_row = next(r for r in rows(report, "P15") if r.host == "web-1")
    assert host_row.status == "fail" and "alice@bastion" in host_row.message
    assert "t0ken-xyz" not in report.to_json()
    ours = await run_validation(config, "pre", only=["P15"], deployment_id="bp-other")
    assert status(ours, "P15") == "pass"
    lock.joinpath("owner.json").unlink()
    lock.rmdir()
    journal = Journal(tmp_path / "state" / "journal.db")
    journal.record(
        Event(
            Kind.DEPLOYMENT_STARTED,
            deployment_id="bp-crashed",
            data={"target": config.portal.name, "release": "r1"},
        )
    )
    # it took the lock, then died: hosts may be half changed (one refused the lock is not)
    journal.record(Event(Kind.LOCK, deployment_id="bp-crashed", data={"action": "acquired"}))
    journal.close()
    report = await run_validation(config, "pre", only=["P15"])
    journal_row = next(r for r in rows(report, "P15") if r.host is None)
    assert journal_row.status == "fail" and "bp-crashed" in journal_row.message
    assert report.decision == "no-go"
    # a deployment that started after ours races for our lock: it does not fail us
    journal = Journal(tmp_path / "state" / "journal.db")
    now = time.time()
    journal.finish_deployment("bp-crashed", "failed", {})
    for name, ts in (("bp-ours", now - 5), ("bp-racing", now)):
        journal.record(
            Event(
                Kind.DEPLOYMENT_STARTED,
                deployment_id=name,
                ts=ts,
                data={"target": config.portal.name},
            )
        )
    journal.record(Event(Kind.LOCK, deployment_id="bp-ours", data={"action": "acquired"}))
    journal.close()
    ours = await run_validation(config, "pre", only=["P15"], deployment_id="bp-ours")
    assert status(ours, "P15") == "pass", rows(ours, "P15")
    someone = await run_validation(config, "pre", only=["P15"])  # no deployment: both count
    assert "bp-ours" in rows(someone, "P15")[-1].message


async def test_a_garbled_redis_lock_read_as_text_is_still_reported(
    tmp_path: Path, redis_server_private: RedisServer
) -> None:
    """A redis_url asking for decoded responses reads the lock as str, not bytes: a value
    that is not JSON is still shown (it used to raise AttributeError on ``str.decode``)."""
    config = make_config(tmp_path, redis={"url": redis_server_private.url + "?decode_responses=1"})
    with redis_server_private.client() as admin:
        admin.set(redis_key(config), "garbled lock value")
    report = await run_validation(config, "pre", only=["P15"], deployment_id="bp-ours")
    journal_row = next(r for r in rows(report, "P15") if r.host is None)
    assert journal_row.status == "fail", journal_row
    assert "the Redis lock is held for deployment ?" in journal_row.message


async def test_disabled_check_is_reported_with_its_reason(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        validation={
            "disabled": {"P06": "disk watched by the NOC"},
            "disk_free_fail_below": 99.99,
            "disk_free_warn_below": 100,
        },
    )
    report = await run_validation(config, "pre", only=["P06", "P07"])
    (p06,) = rows(report, "P06")
    assert p06.status == "skipped" and p06.disabled
    assert report.to_dict()["disabled"] == [{"id": "P06", "reason": "disk watched by the NOC"}]


async def test_weights_and_critical_are_configurable(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        validation={
            "memory_warn_above": 0,
            "memory_fail_above": 0,
            "critical": {"P07": True},
            "weights": {"P07": 1, "P06": 99},
            "disk_free_warn_below": 0,
            "disk_free_fail_below": 0,
            "pass_score": 50,
        },
    )
    report = await run_validation(config, "pre", only=["P06", "P07"])
    assert report.score == 99.0
    assert report.decision == "no-go" and "critical check P07" in report.reasons[0]
