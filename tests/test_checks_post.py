"""Post-deployment checks (Q01..Q18) against a real release layout on disk and a real HTTP
app on loopback that can be made slow, failing, or serving the wrong version."""

# ruff: noqa: F811  (pytest fixtures imported from tests.test_checks_support)
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from backend.checks import run_validation
from backend.checks.flagsync import find_hook
from tests.fixtures import RedisServer
from tests.test_checks_support import (  # noqa: F401
    PortalApp,
    make_config,
    portal_app,
    rows,
    status,
    tls_app,
    tls_ca,
)

RELEASE = "20250801020000"
SHA = "a" * 40


def layout(tmp_path: Path, release: str = RELEASE, current: str | None = None) -> Path:
    """releases/<release> with a REVISION file and a build manifest; current -> it."""
    deploy = tmp_path / "app"
    rel = deploy / "releases" / release
    (rel / "public" / "build").mkdir(parents=True, exist_ok=True)
    (rel / "REVISION").write_text(SHA + "\n")
    manifest = {"resources/js/app.js": {"file": "assets/app-1a.js", "css": ["assets/app-2b.css"]}}
    (rel / "public" / "build" / "manifest.json").write_text(json.dumps(manifest))
    (deploy / "shared" / "storage" / "logs").mkdir(parents=True, exist_ok=True)
    link = deploy / "current"
    if link.is_symlink():
        link.unlink()
    link.symlink_to(Path("releases") / (current or release))
    return deploy


def post_config(tmp_path: Path, app: PortalApp, **validation: Any) -> Any:
    return make_config(
        tmp_path,
        portal={
            "public_url": app.url,
            "health_url": f"http://{{address}}:{app.port}/up",
            "version_url": f"{app.url}/version",
        },
        hosts=[
            {"name": "web-1", "address": "127.0.0.1", "transport": "local"},
            {"name": "web-2", "address": "127.0.0.1", "transport": "local"},
        ],
        validation={"latency_samples": 5, "error_rate_samples": 20, **validation},
    )


async def post(config: Any, only: list[str], **kw: Any) -> Any:
    kw.setdefault("release", RELEASE)
    kw.setdefault("revision", SHA)
    return await run_validation(config, "post", only=only, deployment_id="bp-post", **kw)


async def test_healthy_release_passes_http_checks(tmp_path: Path, portal_app: PortalApp) -> None:
    layout(tmp_path)
    portal_app.assets = {"/build/assets/app-1a.js", "/build/assets/app-2b.css"}
    config = post_config(
        tmp_path,
        portal_app,
        asset_manifest="public/build/manifest.json",
        smoke_pages=[
            {"path": "/", "text": "Business Portal"},
            {"path": "/login", "text": "Sign in"},
        ],
        # a loaded 2-core CI box can take a few hundred ms to answer loopback; the slow
        # case has its own test with a deliberately slow app
        latency_warn_ms=2000,
        latency_fail_ms=5000,
    )
    ids = ["Q01", "Q02", "Q03", "Q04", "Q05", "Q06", "Q07", "Q08", "Q15", "Q17", "Q18"]
    report = await post(config, ids)
    for check_id in ids:
        assert status(report, check_id) == "pass", rows(report, check_id)
    assert [r.host for r in rows(report, "Q02")] == ["web-1", "web-2"]
    assert rows(report, "Q08")[0].value == "2/2"
    assert report.go and report.score == 100.0


async def test_current_on_another_release_fails(tmp_path: Path) -> None:
    layout(tmp_path, release="20250701000000")
    layout(tmp_path, release=RELEASE, current="20250701000000")
    config = make_config(tmp_path)
    report = await post(config, ["Q01"])
    (q01,) = rows(report, "Q01")
    assert q01.status == "fail" and q01.value == "20250701000000" and q01.critical
    assert "expected 20250801020000" in q01.message and report.decision == "no-go"
    (tmp_path / "app" / "releases" / "20250701000000" / ".portal-ops-unfinished").touch()
    report = await post(config, ["Q01"], release="20250701000000")
    assert "unfinished" in rows(report, "Q01")[0].message


async def test_failing_health_fails_per_host_and_public(
    tmp_path: Path, portal_app: PortalApp
) -> None:
    layout(tmp_path)
    portal_app.statuses["/up"] = 500
    report = await post(post_config(tmp_path, portal_app), ["Q02", "Q03"])
    assert [r.status for r in rows(report, "Q02") + rows(report, "Q03")] == ["fail"] * 3
    portal_app.statuses.clear()
    portal_app.health = {
        "finishedAt": 1,
        "checkResults": [
            {"name": "Database", "status": "failed"},
            {"name": "Redis", "status": "ok"},
        ],
    }
    report = await post(post_config(tmp_path, portal_app), ["Q03"])
    (q03,) = rows(report, "Q03")
    assert q03.status == "fail" and "Database" in q03.message


async def test_wrong_version_fails(tmp_path: Path, portal_app: PortalApp) -> None:
    layout(tmp_path)
    config = post_config(tmp_path, portal_app)
    portal_app.version = {"revision": "b" * 40, "release": "20250701000000"}
    report = await post(config, ["Q04"])
    (q04,) = rows(report, "Q04")
    assert q04.status == "fail" and "expected" in q04.message and not report.go
    # the short hash of the expected commit is accepted; a branch name is resolved through
    # the release's REVISION file
    portal_app.version = {"version": "2.1", "commit": SHA[:8]}
    assert status(await post(config, ["Q04"], revision="main"), "Q04") == "pass"


async def test_version_key_reads_one_value_per_host(tmp_path: Path, portal_app: PortalApp) -> None:
    """``/version`` returning ``{"revision": ...}``: a key path reads that value alone (a
    matching SHA elsewhere in the document does not count); a path URL with a base_url per
    host asks every host; a key missing from the document is a clear failure."""
    layout(tmp_path)
    config = post_config(tmp_path, portal_app, version_key="build.revision")
    config.portal.version_url = "/version"
    for host in config.hosts:
        host.base_url = portal_app.url
    portal_app.version = {"build": {"revision": SHA}, "release": "x"}
    report = await post(config, ["Q04"])
    q04 = rows(report, "Q04")
    assert [r.host for r in q04] == ["web-1", "web-2"]
    assert all(r.status == "pass" and "build.revision" in r.message for r in q04)
    portal_app.version = {"build": {"revision": "b" * 40}, "previous": SHA}
    assert status(await post(config, ["Q04"]), "Q04") == "fail"
    portal_app.version = {"revision": SHA}
    missing = rows(await post(config, ["Q04"]), "Q04")[0]
    assert missing.status == "fail"
    assert "'build' is not in the document (keys revision)" in missing.message


async def test_slow_app_fails_latency(tmp_path: Path, portal_app: PortalApp) -> None:
    layout(tmp_path)
    config = post_config(
        tmp_path, portal_app, latency_samples=3, latency_warn_ms=50, latency_fail_ms=100
    )
    portal_app.delay = 0.15
    report = await post(config, ["Q05"])
    (q05,) = rows(report, "Q05")
    assert q05.status == "fail" and q05.unit == "ms" and q05.value >= 100


async def test_failing_app_fails_error_rate_and_smoke_pages(
    tmp_path: Path, portal_app: PortalApp
) -> None:
    layout(tmp_path)
    config = post_config(
        tmp_path, portal_app, smoke_pages=[{"path": "/", "text": "Portal"}, "/login"]
    )
    portal_app.statuses["/"] = 500
    report = await post(config, ["Q06", "Q07"])
    (q06,) = rows(report, "Q06")
    assert q06.status == "fail" and q06.value == 100.0 and q06.critical
    (q07,) = rows(report, "Q07")
    assert q07.status == "fail" and "/: 500, expected 200" in q07.message
    assert q07.value == "1/2" and report.decision == "no-go"
    portal_app.statuses.clear()
    portal_app.pages["/"] = "<h1>Whoops, something went wrong</h1>"
    report = await post(config, ["Q07"])
    assert "'Portal' not in the page" in rows(report, "Q07")[0].message


async def test_missing_asset_fails(tmp_path: Path, portal_app: PortalApp) -> None:
    layout(tmp_path)
    portal_app.assets = {"/build/assets/app-1a.js"}
    config = post_config(tmp_path, portal_app, asset_manifest="public/build/manifest.json")
    (q08,) = rows(await post(config, ["Q08"]), "Q08")
    assert q08.status == "fail" and "app-2b.css: 404" in q08.message


async def test_pending_migrations(tmp_path: Path) -> None:
    layout(tmp_path)
    laravel_pending = (
        "  Migration name .............. Batch / Status\n"
        "  2024_01_01_000000_create_users_table ........ [1] Ran\n"
        "  2025_08_01_000000_add_invoice_totals ........ Pending\n"
    )
    out = tmp_path / "status.txt"
    cases = [
        ("PENDING=0", "pass"),
        ("PENDING=2", "fail"),
        (laravel_pending, "fail"),
        ("Migration table not found.", "error"),
    ]
    for text, expected in cases:
        out.write_text(text)
        config = make_config(tmp_path, validation={"migrate_status": f"cat {out}"})
        report = await post(config, ["Q09"])
        assert status(report, "Q09") == expected, (text, rows(report, "Q09"))
    config = make_config(tmp_path, commands={"migrate_status": "echo PENDING=1"})
    (q09,) = rows(await post(config, ["Q09"]), "Q09")
    assert q09.status == "fail" and q09.value == 1  # [commands] migrate_status is used


async def test_app_dependencies_workers_scheduler(tmp_path: Path) -> None:
    layout(tmp_path)
    good = make_config(
        tmp_path,
        validation={
            "database": "test -f REVISION",
            "cache": "echo cached",
            "queue_command": {"command": "echo 'Horizon is running.'", "expect": "running"},
            "scheduler_command": "echo '* * * * * php artisan schedule:run'",
        },
    )
    report = await post(good, ["Q10", "Q11", "Q12"])
    assert [status(report, c) for c in ("Q10", "Q11", "Q12")] == ["pass"] * 3
    assert rows(report, "Q10")[0].value == "2/2"  # database and cache, in the new release
    bad = make_config(
        tmp_path,
        validation={
            "database": "true",
            "cache": "echo 'Connection refused' >&2; exit 1",
            "queue_command": {"command": "echo 'Horizon is inactive.'", "expect": "running"},
            "scheduler_command": "crontab -l 2>/dev/null | grep -q no-such-entry",
        },
    )
    report = await post(bad, ["Q10", "Q11", "Q12"])
    assert [status(report, c) for c in ("Q10", "Q11", "Q12")] == ["fail"] * 3
    assert "cache:" in rows(report, "Q10")[0].message
    assert "Connection refused" in rows(report, "Q10")[0].message


async def test_app_server_pool(tmp_path: Path, portal_app: PortalApp) -> None:
    layout(tmp_path)
    config = post_config(
        tmp_path, portal_app, pool_status_url=f"http://{{address}}:{portal_app.port}/fpm-status"
    )
    assert status(await post(config, ["Q13"]), "Q13") == "pass"
    portal_app.pool.update({"listen queue": 7, "idle processes": 0, "active processes": 5})
    (first, _) = rows(await post(config, ["Q13"]), "Q13")
    assert first.status == "fail" and "saturated" in first.message and first.value == 7


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


async def test_new_error_in_app_log_after_the_switch(tmp_path: Path) -> None:
    deploy = layout(tmp_path)
    log = deploy / "shared" / "storage" / "logs" / "laravel-2025-08-01.log"
    switch = time.time() - 60
    log.write_text(
        f"[{_stamp(switch - 120)}] production.ERROR: old failure before the switch\n"
        f"[{_stamp(switch + 10)}] production.INFO: deployed\n"
    )
    config = make_config(tmp_path, validation={"app_log": "shared/storage/logs/laravel-*.log"})
    report = await post(config, ["Q14"], since=switch)
    assert status(report, "Q14") == "pass", rows(report, "Q14")
    with log.open("a") as fh:
        fh.write(f"[{_stamp(switch + 30)}] production.ERROR: SQLSTATE[42S22] Column not found\n")
        fh.write("#0 /var/www/app/Http/Controller.php(42): stack line\n")
    report = await post(config, ["Q14"], since=switch)
    (q14,) = rows(report, "Q14")
    assert q14.status == "fail" and q14.value == 1 and "Column not found" in q14.message
    report = await post(config, ["Q14"], since=None)
    assert status(report, "Q14") == "skipped"
    missing = make_config(tmp_path, validation={"app_log": "shared/storage/logs/nope.log"})
    assert status(await post(missing, ["Q14"], since=switch), "Q14") == "error"


async def test_security_headers(tmp_path: Path, portal_app: PortalApp, tls_ca) -> None:
    layout(tmp_path)
    config = post_config(tmp_path, portal_app)
    portal_app.headers = {"X-Content-Type-Options": "nosniff"}
    (q15,) = rows(await post(config, ["Q15"]), "Q15")
    assert q15.status == "warn" and "X-Frame-Options|Content-Security-Policy" in q15.message
    ca_file = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    secure = tls_app(tls_ca, days=365)
    try:
        secure.headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "x"}
        config = make_config(
            tmp_path, portal={"public_url": secure.url}, validation={"ca_file": str(ca_file)}
        )
        (q15,) = rows(await post(config, ["Q15"]), "Q15")
        assert q15.status == "fail" and q15.meta["missing"] == ["Strict-Transport-Security"]
        secure.headers["Strict-Transport-Security"] = "max-age=63072000"
        assert status(await post(config, ["Q15"]), "Q15") == "pass"
    finally:
        secure.stop()


async def test_flags_in_redis_match_the_store(
    tmp_path: Path, redis_server_private: RedisServer
) -> None:
    redis = redis_server_private
    layout(tmp_path)
    (q16,) = rows(await post(make_config(tmp_path), ["Q16"]), "Q16")
    assert q16.status == "skipped" and q16.message.startswith("flag store not configured")
    config = make_config(tmp_path, redis={"url": redis.url})
    if find_hook() is None:  # backend.flags without verify_publication
        (q16,) = rows(await post(config, ["Q16"]), "Q16")
        assert (q16.status, q16.message) == ("skipped", "flag store not configured")
        return
    (q16,) = rows(await post(config, ["Q16"]), "Q16")
    assert q16.status == "skipped" and "no flags" in q16.message
    from backend.flags.service import FlagService

    with FlagService.from_config(config) as flags:
        flags.create("new-navigation", reason="release flag")
    (q16,) = rows(await post(config, ["Q16"]), "Q16")
    assert q16.status == "pass" and q16.meta["checked"] == 1, q16
    redis.flush()  # Redis restarted empty: apps no longer see the flag
    report = await post(config, ["Q16"])
    (q16,) = rows(report, "Q16")
    assert q16.status == "fail" and "new-navigation" in q16.meta["mismatches"]
    assert q16.critical and report.decision == "no-go"
    redis.stop()
    (q16,) = rows(await post(config, ["Q16"]), "Q16")
    assert q16.status == "error" and "cannot compare flags" in q16.message


async def test_disk_and_memory_after_the_switch(tmp_path: Path) -> None:
    layout(tmp_path)
    config = make_config(
        tmp_path,
        validation={
            "disk_free_warn_below": 100,
            "disk_free_fail_below": 99.99,
            "memory_warn_above": 0,
            "memory_fail_above": 100,
        },
    )
    report = await post(config, ["Q17", "Q18"])
    assert status(report, "Q17") == "fail" and status(report, "Q18") == "warn"


@pytest.mark.parametrize("check_id", ["Q02", "Q05", "Q06", "Q07", "Q08", "Q13", "Q15"])
async def test_http_checks_skip_without_configuration(tmp_path: Path, check_id: str) -> None:
    layout(tmp_path)
    (only,) = rows(await post(make_config(tmp_path), [check_id]), check_id)
    assert only.status == "skipped" and only.message
