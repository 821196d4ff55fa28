"""Secrets planted in every secret-bearing setting never appear in any output, file or
journal row: a full deploy, a rollback, a notification and a validation through the CLI.

The Redis URL points at a real redis-server that has no password, so every Redis client
fails to authenticate: the error paths (lock, flags, feed) are where the password leaked."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from backend.redact import redact
from tests.engine.helpers import make_repo, ssh_config

ROOT = Path(__file__).resolve().parent.parent
REDIS_PW = "PLANTED-redis-pw-7731"
SLACK = "http://127.0.0.1:9/services/T000/B000/PLANTEDslackTOKEN42"  # loopback, refused
HOOK_SECRET = "PLANTED-hmac-secret-5512"
API_KEY = "PLANTED-api-key-9090"
URL_TOKEN = "PLANTEDquerytoken77"
PLANTED = [REDIS_PW, "PLANTEDslackTOKEN42", HOOK_SECRET, API_KEY, URL_TOKEN]


def toml_value(value: object) -> str:
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
        )
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value))


def to_toml(cfg: dict) -> str:
    lines: list[str] = []
    for section, body in cfg.items():
        if isinstance(body, list):
            for item in body:
                lines.append(f"[[{section}]]")
                lines += [f"{k} = {toml_value(v)}" for k, v in item.items()]
        else:
            lines.append(f"[{section}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in body.items()]
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)
    return text


@pytest.mark.slow
def test_planted_secrets_appear_in_no_output_file_or_journal_row(
    sshd, redis_server, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    cfg = ssh_config(sshd, tmp_path, repo)
    redis_url = f"redis://:{REDIS_PW}@127.0.0.1:{redis_server.port}/0"
    cfg["redis"] = {"url": redis_url}
    cfg["portal"]["health_url"] = f"http://127.0.0.1:9/up?token={URL_TOKEN}"
    cfg["validation"] = {
        **cfg["validation"],
        "api_probes": [{"name": "Probe", "url": "http://127.0.0.1:9/me", "key_env": "T_API_KEY"}],
        "redis_url": redis_url,
    }
    cfg["notify"] = {
        # retries are part of the error paths checked here; their waits are not the point
        "backoff": 0.01,
        "channels": {
            "deployments": {"kind": "slack", "url_env": "T_SLACK_URL", "min_interval": 0},
            "hook": {
                "kind": "webhook",
                "url_env": "T_HOOK_URL",
                "secret_env": "T_HOOK_SECRET",
            },
        },
    }
    cfg["rollout"] = {**cfg["rollout"], "health_timeout": 1}
    config_file = tmp_path / "portal-ops.toml"
    config_file.write_text(to_toml(cfg))
    env = {
        **os.environ,
        "PORTAL_OPS_CONFIG": str(config_file),
        "T_API_KEY": API_KEY,
        "T_SLACK_URL": SLACK,
        "T_HOOK_URL": f"http://127.0.0.1:9/hook?token={URL_TOKEN}",
        "T_HOOK_SECRET": HOOK_SECRET,
    }
    outputs: list[str] = []

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "tui.cli", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=240,
            check=False,
        )
        outputs.append(f"$ {' '.join(args)}\n{result.stdout}\n{result.stderr}")
        assert "Traceback" not in result.stderr, result.stderr
        return result

    cli("config", "check")
    cli("validate", "pre")
    cli("deploy", "--revision", "v1", "--skip-validation", "-v")
    cli("deploy", "--revision", "v2", "--skip-validation", "-v")
    cli("rollback", "--force")
    cli("notify", "deployment-success", "planted message", "--dry-run")
    cli("notify", "deployment-success", "planted message")
    cli("history", "--json")
    cli("show", "--json", "--events", journal_latest(tmp_path))

    text = "\n".join(outputs)
    # the commands really ran into the error paths that used to leak
    assert "Deployment" in text and "Rollback" in text, text[-3000:]
    assert "***" in text  # something secret was there, and masked
    blobs = {str(p): read(p) for p in tmp_path.rglob("*") if p.is_file() and "repo" not in p.parts}
    rows = journal_rows(tmp_path / "state" / "journal.db")
    for secret in PLANTED:
        assert secret not in text, (secret, [o for o in outputs if secret in o][:1])
        leaked = [p for p, body in blobs.items() if secret in body and p != str(config_file)]
        assert not leaked, (secret, leaked)
        assert not [r for r in rows if secret in r], secret


def read(path: Path) -> str:
    try:
        return path.read_bytes().decode(errors="replace")
    except FileNotFoundError:  # SQLite's -wal/-shm come and go
        return ""


def journal_latest(root: Path) -> str:
    with sqlite3.connect(root / "state" / "journal.db") as db:
        return db.execute("SELECT id FROM deployments ORDER BY started_at DESC LIMIT 1").fetchone()[
            0
        ]


def journal_rows(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [repr(row) for t in tables for row in db.execute(f"SELECT * FROM {t}")]


def test_redact_masks_url_passwords_query_tokens_and_registered_values() -> None:
    from backend.redact import register

    register("registered-secret-value")
    line = (
        "redis://:pw1234@h:6379/0 https://u:pa55word@x/y?a=1&token=abcd&api_key=zz9 "
        "Bearer registered-secret-value"
    )
    out = redact(line)
    for secret in ("pw1234", "pa55word", "abcd", "zz9", "registered-secret-value"):
        assert secret not in out
    assert "redis://:***@h:6379/0" in out and "a=1" in out


def test_redact_sees_secrets_registered_after_its_first_use() -> None:
    """redact keeps its secrets sorted between calls (it runs on every output line): a
    secret registered later is masked too, and the longer of two overlapping secrets is
    masked whole."""
    from backend.redact import register

    assert redact("plain line, nothing to hide") == "plain line, nothing to hide"
    assert redact("late-secret-1234 here") == "late-secret-1234 here"
    register("late-secret-1234")
    assert redact("late-secret-1234 here") == "*** here"
    register("late-secret-1234-and-more")
    assert redact("x late-secret-1234-and-more y") == "x *** y"
    assert redact("HTTPS://U:Pa55word@host/ ?Token=t0k3n") == "HTTPS://U:***@host/ ?Token=***"
    assert redact("extra-secret-9 and late-secret-1234", extra=["extra-secret-9"]) == (
        "*** and ***"
    )
