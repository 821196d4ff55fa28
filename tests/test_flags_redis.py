"""Publication through a real redis-server: CLI changes reach a FlagClient in another
process, the kill switch reaches it, a Redis outage leaves it on last known values, and
it resyncs when Redis is back. Also usage stats and the OpenFeature provider."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.flags.client import FlagClient
from backend.flags.model import Context
from backend.flags.service import FlagService
from tests.fixtures import RedisServer

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "t-flags"

# The app side, in its own process: prints its view (JSON, one line) on every client event
# and whenever it reads "poll" on stdin.
CLIENT_APP = r"""
import json, sys, threading
from backend.flags.client import FlagClient
from backend.flags.model import Context
client = FlagClient(sys.argv[1], sys.argv[2], flush_interval=0.1, max_backoff=0.2)
lock = threading.Lock()
def show(event, names=()):
    flags = client.flags()
    view = {
        "event": event,
        "ready": client.ready.is_set(),
        "connected": client.connected,
        "stale": client.stale,
        "emergency": client.emergency_state.active,
        "flags": {n: [f.enabled, f.percentage] for n, f in flags.items()},
        "checks": {
            n: list(client.resolve(n, Context(company="122"))[:3]) for n in sorted(flags)
        },
    }
    with lock:
        print(json.dumps(view), flush=True)
client.add_listener(show)
client.start(5)
show("started")
for line in sys.stdin:
    if line.strip() == "quit":
        break
    show("poll")
client.close()
"""


class AppProcess:
    """A FlagClient in a child process, observed through its stdout."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CLIENT_APP, url, PREFIX],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.last: dict[str, Any] = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                pass

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        """Poll the child until its view satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.last = self.lines.get(timeout=0.05)
            except queue.Empty:
                assert self.proc.stdin is not None
                self.proc.stdin.write("poll\n")
                self.proc.stdin.flush()
                continue
            if predicate(self.last):
                return self.last
        raise AssertionError(f"client never got there; last view: {self.last}")

    def stop(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def app_factory() -> Iterator[Callable[[str], AppProcess]]:
    apps: list[AppProcess] = []

    def start(url: str) -> AppProcess:
        app = AppProcess(url)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


def write_config(tmp_path: Path, url: str, state: Path) -> Path:
    path = tmp_path / "portal-ops.toml"
    path.write_text(
        f"""
[portal]
repository = "https://git.example.invalid/portal.git"
deploy_path = "/srv/portal"

[[hosts]]
name = "web-1"
address = "127.0.0.1"
transport = "local"

[redis]
url = "{url}"
prefix = "{PREFIX}"

[state]
dir = "{state}"
"""
    )
    return path


def cli_inprocess(config: Path, *args: str) -> str:
    """The same click command in-process (for reads, where a subprocess adds nothing)."""
    from click.testing import CliRunner

    from tui.commands.feature import feature

    res = CliRunner().invoke(feature, [*args, "--config", str(config)])
    assert res.exit_code == 0, res.output
    return res.stdout


def cli(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "tui.cli", "feature", *args, "--config", str(config)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PORTAL_OPS_OPERATOR": "dave"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_cli_changes_and_emergency_reach_a_client_in_another_process(
    fresh_redis: RedisServer,
    state_dir: Path,
    tmp_path: Path,
    app_factory: Callable[[str], AppProcess],
) -> None:
    config = write_config(tmp_path, fresh_redis.url, state_dir)
    cli(config, "create", "ui-improvements")
    app = app_factory(fresh_redis.url)
    app.wait_for(lambda v: v["ready"] and v["flags"] == {"ui-improvements": [False, 100]})

    cli(config, "enable", "ui-improvements", "--percentage=50")
    view = app.wait_for(lambda v: v["flags"]["ui-improvements"] == [True, 50])
    assert view["checks"]["ui-improvements"] == [False, "SPLIT", "percentage"]  # bucket 86

    cli(config, "override", "ui-improvements", "--company=122", "--on")
    view = app.wait_for(lambda v: v["checks"]["ui-improvements"][0] is True)
    assert view["checks"]["ui-improvements"] == [True, "TARGETING_MATCH", "company-override"]

    out = cli(config, "emergency-disable", "--reason=Critical issue").stdout
    assert "published to Redis" in out
    view = app.wait_for(lambda v: v["emergency"])
    assert view["checks"]["ui-improvements"] == [False, "DISABLED", "emergency-disable"]
    assert view["flags"]["ui-improvements"] == [True, 50]  # configuration kept

    cli(config, "restore", "--yes")
    view = app.wait_for(lambda v: not v["emergency"])
    assert view["checks"]["ui-improvements"] == [True, "TARGETING_MATCH", "company-override"]

    cli(config, "delete", "ui-improvements", "--yes")
    app.wait_for(lambda v: v["flags"] == {})


def test_redis_outage_keeps_last_known_values_then_resyncs(
    redis_server_private: RedisServer,
    state_dir: Path,
    tmp_path: Path,
    app_factory: Callable[[str], AppProcess],
) -> None:
    redis = redis_server_private
    config = write_config(tmp_path, redis.url, state_dir)
    cli_inprocess(config, "create", "mobile-nav")
    cli_inprocess(config, "enable", "mobile-nav", "--percentage=100")
    app = app_factory(redis.url)
    app.wait_for(lambda v: v["ready"] and v["flags"] == {"mobile-nav": [True, 100]})

    redis.stop()
    view = app.wait_for(lambda v: not v["connected"] and v["stale"])
    assert view["flags"] == {"mobile-nav": [True, 100]}  # last known values
    assert view["checks"]["mobile-nav"] == [True, "STALE", "percentage-100"]

    # a change while Redis is down: saved in the store, reported as NOT published (exit 1)
    proc = cli(config, "enable", "mobile-nav", "--percentage=30", check=False)
    assert proc.returncode == 1 and "NOT published" in proc.stderr
    app.wait_for(lambda v: v["flags"] == {"mobile-nav": [True, 100]} and v["stale"])

    redis.start()  # back, but empty (no persistence): the client keeps what it had
    view = app.wait_for(lambda v: v["connected"])
    assert view["flags"] == {"mobile-nav": [True, 100]} and view["stale"]

    cli(config, "publish")  # the bastion republishes the store
    view = app.wait_for(lambda v: v["flags"] == {"mobile-nav": [True, 30]} and not v["stale"])
    assert view["checks"]["mobile-nav"][1] == "SPLIT"


def test_any_change_after_an_outage_republishes_everything(
    redis_server_private: RedisServer, state_dir: Path, app_factory: Callable[[str], AppProcess]
) -> None:
    redis = redis_server_private
    with FlagService(state_dir / "journal.db", redis.url, PREFIX) as service:
        service.create("a")
        service.enable("a", 100)
        app = app_factory(redis.url)
        app.wait_for(lambda v: v["flags"] == {"a": [True, 100]})
        redis.stop()
        assert service.create("b").published is False
        assert service.emergency_disable("outage").published is False
        redis.start()
        change = service.create("c")  # Redis missed two changes: a snapshot goes out
        assert change.published and change.publication and change.publication.snapshot
        view = app.wait_for(lambda v: set(v["flags"]) == {"a", "b", "c"} and v["emergency"])
        assert view["checks"]["a"][2] == "emergency-disable"


def test_a_late_writer_never_overwrites_a_newer_state(
    fresh_redis: RedisServer, state_dir: Path
) -> None:
    """Two bastion processes publishing out of order: Redis keeps the newest revision (the
    late one sends the whole store, which holds its change and the newer one)."""
    from backend.flags.publish import Publisher

    with FlagService(state_dir / "journal.db", fresh_redis.url, PREFIX) as service:
        service.create("f")
        old = service.enable("f", 10)
        service.enable("f", 50)
        publisher = Publisher(fresh_redis.url, PREFIX)
        assert old.entry is not None
        late = publisher.change(service.store, old.entry.seq, "upsert", "f", old.after)
        publisher.close()
        assert late.ok and late.snapshot  # written as part of the whole, current store
        stored = json.loads(fresh_redis.client().hget(f"{PREFIX}:flags", "f"))
        assert stored["percentage"] == 50


def test_usage_is_counted_in_batches_and_read_back_by_stats(
    fresh_redis: RedisServer, state_dir: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, fresh_redis.url, state_dir)
    cli_inprocess(config, "create", "billing-v2")
    cli_inprocess(config, "enable", "billing-v2", "--percentage=50")
    client = FlagClient(fresh_redis.url, PREFIX, flush_interval=60)
    assert client.start(5)
    commands_before = fresh_redis.client().info("stats")["total_commands_processed"]
    served = {}
    for i in range(200):
        company = f"c{i % 20}"
        served[company] = client.is_enabled("billing-v2", Context(company=company))
    # no Redis command per evaluation: counting is in-process until the flush
    commands_after = fresh_redis.client().info("stats")["total_commands_processed"]
    assert commands_after - commands_before < 10
    client.is_enabled("unknown-flag", Context(company="c1"))  # not counted
    client.close()  # flushes

    stats = json.loads(cli_inprocess(config, "stats", "billing-v2", "--json", "--top", "3"))
    on = sum(10 for v in served.values() if v)
    assert (stats["evaluations"], stats["true"], stats["false"]) == (200, on, 200 - on)
    assert len(stats["top_companies"]) == 3
    assert all(c["evaluations"] == 10 for c in stats["top_companies"])
    assert stats["last_evaluated"] is not None
    assert sum(p["true"] + p["false"] for p in stats["series"]) == 200
    listed = json.loads(cli_inprocess(config, "list", "--json"))["flags"]
    assert listed[0]["evaluations_last_hour"] == 200
    text = cli_inprocess(config, "stats", "billing-v2")
    assert "200 evaluations" in text and "top companies" in text


def test_a_failed_flush_is_retried_without_double_counting(
    redis_server_private: RedisServer, state_dir: Path
) -> None:
    redis = redis_server_private
    with FlagService(state_dir / "journal.db", redis.url, PREFIX) as service:
        service.create("f")
        service.enable("f", 100)
        client = FlagClient(redis.url, PREFIX, flush_interval=3600, max_backoff=0.1)
        assert client.start(5)
        for _ in range(5):
            client.is_enabled("f", Context(company="x"))
        client._flush()
        redis.stop()
        for _ in range(7):
            client.is_enabled("f", Context(company="x"))
        client._flush()  # fails: kept pending
        redis.start()
        client.close()  # flushes the 7
        # Redis restarted empty, so only the 7 counted after the first flush are there
        assert service.stats("f").total == 7


def test_openfeature_provider(fresh_redis: RedisServer, state_dir: Path) -> None:
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext

    from backend.flags.provider import PortalOpsProvider

    with FlagService(state_dir / "journal.db", fresh_redis.url, PREFIX) as service:
        service.create("ab12a", group="ab12a")
        service.enable("ab12a", 50)
        service.override("ab12a", "user", "42", True)
        api.set_provider_and_wait(PortalOpsProvider(FlagClient(fresh_redis.url, PREFIX)))
        try:
            client = api.get_client()
            split = client.get_boolean_details("ab12a", True, EvaluationContext("122"))
            assert (split.value, split.reason, split.variant) == (False, "SPLIT", "off")
            assert split.flag_metadata["rule"] == "percentage"
            target = client.get_boolean_details(
                "ab12a", False, EvaluationContext("122", {"userId": "42"})
            )
            assert (target.value, target.reason) == (True, "TARGETING_MATCH")
            missing = client.get_boolean_details("nope", True, EvaluationContext("1"))
            assert (missing.value, missing.reason, missing.error_code) == (
                True,
                "ERROR",
                "FLAG_NOT_FOUND",
            )
            assert client.get_string_details("ab12a", "x").error_code == "TYPE_MISMATCH"
            service.emergency_disable("boom")
            deadline = time.monotonic() + 5
            while client.get_boolean_value(
                "ab12a", True, EvaluationContext("122", {"userId": "42"})
            ):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            off = client.get_boolean_details("ab12a", True, EvaluationContext("122"))
            assert off.reason == "DISABLED"
        finally:
            api.shutdown()


def test_client_without_redis_serves_defaults_and_never_raises() -> None:
    from tests.fixtures.net import free_port

    client = FlagClient(f"redis://127.0.0.1:{free_port()}/0", PREFIX, max_backoff=0.1)
    assert client.start(0.3) is False
    assert client.is_enabled("anything", Context(company="1"), default=True) is True
    res = client.resolve("anything", Context(company="1"))
    assert (res.value, res.reason, res.error_code) == (False, "ERROR", "PROVIDER_NOT_READY")
    assert "Connection" in client.status()["last_error"]
    client.close()


def test_secrets_in_the_redis_url_are_never_shown(state_dir: Path) -> None:
    from tests.fixtures.net import free_port

    url = f"redis://admin:s3cr3t-pass@127.0.0.1:{free_port()}/0"
    with FlagService(state_dir / "journal.db", url, PREFIX) as service:
        change = service.create("f")
    assert change.publication is not None and not change.publication.ok
    assert "s3cr3t" not in change.publication.error and "127.0.0.1" in change.publication.error
    client = FlagClient(url, PREFIX)
    assert "s3cr3t" not in json.dumps(client.status())


def test_verify_publication_compares_redis_with_the_store(
    redis_server_private: RedisServer, state_dir: Path, tmp_path: Path
) -> None:
    from backend.config import load_config
    from backend.flags import verify_publication

    redis = redis_server_private
    config = load_config(write_config(tmp_path, redis.url, state_dir))
    with FlagService.from_config(config) as service:
        service.create("a")
        service.enable("a", 40)
        assert verify_publication(config).ok
        redis.stop()
        service.enable("a", 60)  # saved, not published
        service.emergency_disable("outage")
        redis.start()  # empty
        result = verify_publication(config)
        assert not result.ok and "no flag data" in result.message
        service.publish()
        assert verify_publication(config).ok
        redis.client().hset(f"{PREFIX}:flags", "ghost", "{}")  # served but not in the store
        result = verify_publication(config)
        assert (result.ok, result.mismatches, result.checked) == (False, ["ghost"], 1)


def test_cli_publish_check(fresh_redis: RedisServer, state_dir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tui.commands.feature import feature

    config = str(write_config(tmp_path, fresh_redis.url, state_dir))
    runner = CliRunner()
    assert runner.invoke(feature, ["create", "a", "--config", config]).exit_code == 0
    ok = runner.invoke(feature, ["publish", "--check", "--config", config])
    assert ok.exit_code == 0 and "match the store" in ok.stdout
    fresh_redis.client().hdel(f"{PREFIX}:flags", "a")
    bad = runner.invoke(feature, ["publish", "--check", "--config", config])
    assert bad.exit_code == 1 and "differs: a" in bad.stdout
    assert runner.invoke(feature, ["publish", "--config", config]).exit_code == 0
    assert runner.invoke(feature, ["publish", "--check", "--config", config]).exit_code == 0
