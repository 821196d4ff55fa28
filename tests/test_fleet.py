"""Fleets: ``--hosts``/``--roles`` against a real sshd, the fleet from an Ansible inventory
(JSON, INI, YAML files, no Ansible), ``-e`` overlays, config discovery."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import tomli_w

from backend.config import ConfigError, load_config, parse_config
from backend.engine import Engine
from backend.events import Kind
from backend.fleet.limit import LimitError, limit_hosts
from backend.journal import Journal
from tests.engine.helpers import current, make_repo, ssh_config, stored_record, tree


class Ran:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli(*args: str, cwd: Path | None = None, **env: str) -> Ran:
    """The real ``portal-ops`` command line, in this process (click's runner: no interpreter
    start-up per call)."""
    from click.testing import CliRunner

    from tui.cli import cli as portal_ops

    unset = {k: None for k in os.environ if k.startswith("PORTAL_OPS_") or k == "NO_COLOR"}
    here = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner().invoke(portal_ops, list(args), env={**unset, **env})
    finally:
        os.chdir(here)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def engine_for(config) -> Engine:
    return Engine(config, journal=Journal(Path(config.state.dir) / "journal.db"))


# -- --hosts / --roles ------------------------------------------------------------------


async def test_limited_deploy_then_full_rollback_leaves_the_others_untouched(
    sshd, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    raw = ssh_config(sshd, tmp_path, repo, hosts=3)
    full = parse_config(raw)
    first = await engine_for(full).deploy(revision="v1")
    assert first.ok, first.error
    before = {h: tree(tmp_path / h) for h in ("host-1", "host-3")}

    limited = limit_hosts(parse_config(raw), ["host-2"], [])
    plan = await engine_for(limited).plan(revision="v2")
    assert "LIMITED to 1 host(s): host-2" in plan.render()
    assert plan.to_dict()["limit"] == ["host-2"]
    engine = engine_for(limited)
    result = await engine.deploy(revision="v2")
    assert result.ok, result.error
    assert set(result.hosts) == {"host-2"}
    assert current(tmp_path, "host-2") == result.release
    for host in ("host-1", "host-3"):
        assert tree(tmp_path / host) == before[host]  # not even a record of the deployment
    row = engine.journal.get_deployment(result.deployment_id)
    assert row["options"]["limit"] == ["host-2"]
    started = [
        e for e in engine.journal.events(result.deployment_id) if e.kind == Kind.DEPLOYMENT_STARTED
    ]
    assert started[0].data["hosts"] == ["host-2"]
    record = tmp_path / "host-2" / ".portal-ops" / "deployments" / f"{result.deployment_id}.json"
    assert (stored_record(record) or {})["options"]["limit"] == ["host-2"]

    # a rollback without --hosts, from a machine without the journal: the hosts' record
    # says the deployment was limited, so it acts on host-2 alone
    raw["state"] = {"dir": str(tmp_path / "state-elsewhere")}
    back = await engine_for(parse_config(raw)).rollback(None, "limited undo")
    assert back.deployment_id == result.deployment_id
    assert back.outcome == "succeeded", back.to_dict()
    assert set(back.hosts) == {"host-2"}
    assert current(tmp_path, "host-2") == first.release
    for host in ("host-1", "host-3"):
        assert tree(tmp_path / host) == before[host]


async def test_full_resume_of_a_limited_deployment_stays_limited(sshd, tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    fail = tmp_path / "fail"
    raw = ssh_config(sshd, tmp_path, repo, hosts=3)
    raw["portal"]["on_failure"] = "pause"
    raw["commands"]["migrate"] = f"test ! -e {fail} && " + raw["commands"]["migrate"]
    first = await engine_for(parse_config(raw)).deploy(revision="v1")
    assert first.ok, first.error
    before = {h: tree(tmp_path / h) for h in ("host-1", "host-3")}
    fail.touch()
    limited = limit_hosts(parse_config(raw), ["host-2"], [])
    paused = await engine_for(limited).deploy(revision="v2")
    assert paused.outcome == "paused", paused.error
    fail.unlink()
    # resumed without --hosts: the journal's limit keeps it on host-2
    resumed = await engine_for(parse_config(raw)).resume(paused.deployment_id)
    assert resumed.outcome == "succeeded", resumed.error
    assert set(resumed.hosts) == {"host-2"}
    assert current(tmp_path, "host-2") == paused.release
    for host in ("host-1", "host-3"):
        assert tree(tmp_path / host) == before[host]


def _three_hosts(tmp_path: Path) -> Path:
    raw = {
        "portal": {"repository": "/srv/repo.git", "deploy_path": "/srv/portal"},
        "hosts": [
            {"name": "web-1", "address": "127.0.0.1", "roles": ["web", "primary"]},
            {"name": "web-2", "address": "127.0.0.2"},
            {"name": "worker-1", "address": "127.0.0.3", "roles": ["worker"]},
        ],
        "state": {"dir": str(tmp_path / "state")},
    }
    path = tmp_path / "portal-ops.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


def test_limit_by_names_patterns_and_roles(tmp_path: Path) -> None:
    config = load_config(_three_hosts(tmp_path))
    assert limit_hosts(config, [], []) is config
    assert [h.name for h in limit_hosts(config, ["web-*"], []).hosts] == ["web-1", "web-2"]
    assert [h.name for h in limit_hosts(config, [], ["worker"]).hosts] == ["worker-1"]
    both = limit_hosts(config, ["web-*"], ["primary"])
    assert both.limit == ["web-1"] and both.fleet == ["web-1", "web-2", "worker-1"]
    with pytest.raises(LimitError, match="no host matches both"):
        limit_hosts(config, ["worker-1"], ["primary"])


def test_unknown_host_or_role_exits_2_naming_it(tmp_path: Path) -> None:
    path = _three_hosts(tmp_path)
    for command in (
        ["deploy"],
        ["rollback"],
        ["unlock"],
        ["validate", "pre"],
        ["resume", "bp-20260101-000000-abcdef"],
    ):
        bad = cli(*command, "--config", str(path), "--hosts", "web-9")
        assert bad.returncode == 2, (command, bad.stderr)
        assert "--hosts: unknown host 'web-9' (hosts: web-1, web-2, worker-1)" in bad.stderr
    role = cli("deploy", "--config", str(path), "--roles", "cache", "--json")
    assert role.returncode == 2
    assert "unknown role 'cache'" in json.loads(role.stdout)["error"]
    shown = cli("config", "check", "--config", str(path), "--roles", "web,worker", "--json")
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert [h["name"] for h in body["config"]["hosts"]] == ["web-1", "web-2", "worker-1"]
    assert body["limit"] == ["web-1", "web-2", "worker-1"]
    one = json.loads(
        cli("config", "check", "--config", str(path), "--hosts", "web-2", "--json").stdout
    )
    assert [h["name"] for h in one["config"]["hosts"]] == ["web-2"]


# -- Ansible inventories ----------------------------------------------------------------

INI = """
# the Ansible way
lb.example.com ansible_host=127.0.0.9

[webservers]
web[01:02].example.com ansible_user=deploy
web03.example.com ansible_host=127.0.0.3 ansible_port=2222

[dbservers]
db.example.com ansible_host=127.0.0.4 portal_ops_deploy_path=/srv/db-portal

[webservers:vars]
ansible_port=2200

[production:children]
webservers
dbservers
"""

YAML = """
all:
  vars:
    ansible_user: ops
  hosts:
    lb.example.com:
      ansible_host: 127.0.0.9
  children:
    production:
      children:
        webservers:
          vars:
            ansible_port: 2200
          hosts:
            web[01:02].example.com:
              ansible_user: deploy
            web03.example.com:
              ansible_host: 127.0.0.3
              ansible_port: 2222
        dbservers:
          hosts:
            db.example.com:
              ansible_host: 127.0.0.4
              portal_ops_deploy_path: /srv/db-portal
"""

# what `ansible-inventory -i inventory.ini --list` prints for the INI above
JSON = {
    "_meta": {
        "hostvars": {
            "lb.example.com": {"ansible_host": "127.0.0.9"},
            "web01.example.com": {"ansible_port": 2200, "ansible_user": "deploy"},
            "web02.example.com": {"ansible_port": 2200, "ansible_user": "deploy"},
            "web03.example.com": {"ansible_host": "127.0.0.3", "ansible_port": 2222},
            "db.example.com": {
                "ansible_host": "127.0.0.4",
                "portal_ops_deploy_path": "/srv/db-portal",
            },
        }
    },
    "all": {"children": ["ungrouped", "production"]},
    "ungrouped": {"hosts": ["lb.example.com"]},
    "production": {"children": ["webservers", "dbservers"]},
    "webservers": {"hosts": ["web01.example.com", "web02.example.com", "web03.example.com"]},
    "dbservers": {"hosts": ["db.example.com"]},
}


@pytest.mark.parametrize(("name", "text"), [("inventory.ini", INI), ("inventory.yml", YAML),
                                            ("inventory.json", json.dumps(JSON))])  # fmt: skip
def test_inventory_hosts_roles_and_vars(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    path = tmp_path / "portal-ops.toml"
    path.write_text(
        '[portal]\nrepository = "/srv/repo.git"\ndeploy_path = "/srv/portal"\n'
        f'[inventory]\nfile = "{name}"\ngroups = ["production"]\n'
        'roles = { dbservers = "primary", webservers = "web" }\n'
    )
    config = load_config(path)
    hosts = {h.name: h for h in config.hosts}
    assert list(hosts) == [
        "web01.example.com",
        "web02.example.com",
        "web03.example.com",
        "db.example.com",
    ]  # lb.example.com is not in production
    web1, web3, db = hosts["web01.example.com"], hosts["web03.example.com"], hosts["db.example.com"]
    assert (web1.address, web1.port) == ("web01.example.com", 2200)
    assert web1.user == "deploy"
    assert (web3.address, web3.port) == ("127.0.0.3", 2222)  # host var over group var
    assert web1.roles == ["production", "web"]
    assert db.roles == ["production", "primary"] and config.primary_host() is db
    assert db.deploy_path == "/srv/db-portal"
    assert config.sources["hosts"] == str(tmp_path / name)


def test_inventory_problems_name_the_key(tmp_path: Path) -> None:
    (tmp_path / "inv.ini").write_text("[web]\nweb-1 ansible_port\n")
    path = tmp_path / "portal-ops.toml"
    path.write_text(
        '[portal]\nrepository = "/r.git"\ndeploy_path = "/srv/p"\n[inventory]\nfile = "inv.ini"\n'
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.problems[0].startswith("inventory.file:") and "inv.ini:2" in str(err.value)
    (tmp_path / "inv.ini").write_text("[web]\nweb-1\n")
    path.write_text(path.read_text() + 'groups = ["db"]\n')
    bad = cli("config", "check", "--config", str(path))
    assert bad.returncode == 2 and "no group 'db' in the inventory (groups: web)" in bad.stderr


# -- overlays and discovery ---------------------------------------------------------------


def _base(directory: Path) -> Path:
    path = directory / "portal-ops.toml"
    path.write_text(
        '[portal]\nrepository = "/srv/repo.git"\ndeploy_path = "/srv/portal"\nrevision = "main"\n'
        'env = { APP_ENV = "staging", LOG = "debug" }\n'
        '[[hosts]]\nname = "staging-1"\naddress = "127.0.0.1"\n'
        "[rollout]\ndrain_seconds = 5\n"
    )
    return path


def test_env_overlay_deep_merges_and_says_who_set_each_key(tmp_path: Path) -> None:
    base = _base(tmp_path)
    overlay = tmp_path / "portal-ops.production.toml"
    overlay.write_text(
        '[portal]\nrevision = "v2"\nenv = { APP_ENV = "production" }\n'
        '[[hosts]]\nname = "prod-1"\naddress = "127.0.0.2"\n'
        '[[hosts]]\nname = "prod-2"\naddress = "127.0.0.3"\n'
    )
    config = load_config(base, environment="production")
    assert config.portal.revision == "v2"
    assert config.portal.env == {"APP_ENV": "production", "LOG": "debug"}  # tables merge
    assert [h.name for h in config.hosts] == ["prod-1", "prod-2"]  # lists are replaced
    assert config.portal.repository == "/srv/repo.git" and config.rollout.drain_seconds == 5
    shown = cli("config", "check", "--config", str(base), "-e", "production", "--json")
    assert shown.returncode == 0, shown.stderr
    sources = json.loads(shown.stdout)["sources"]
    assert sources["portal.revision"] == str(overlay)
    assert sources["portal.env.APP_ENV"] == str(overlay)
    assert sources["portal.env.LOG"] == str(base)
    assert sources["portal.repository"] == str(base)
    text = cli("config", "check", "--config", str(base), "--env", "production")
    assert f"portal.revision  <- {overlay}" in text.stdout
    missing = cli("config", "check", "--config", str(base), "-e", "prod")
    assert missing.returncode == 2 and "portal-ops.prod.toml" in missing.stderr
    from_env = cli("config", "check", "--config", str(base), PORTAL_OPS_ENV="production")
    assert from_env.returncode == 0 and "prod-2" in from_env.stdout


def test_config_found_in_parent_dirs_then_xdg(tmp_path: Path) -> None:
    project = tmp_path / "project"
    nested = project / "app" / "src"
    nested.mkdir(parents=True)
    xdg = tmp_path / "xdg"
    (xdg / "portal-ops").mkdir(parents=True)
    _base(xdg / "portal-ops")
    home = {"XDG_CONFIG_HOME": str(xdg), "HOME": str(tmp_path)}
    found = cli("config", "check", cwd=nested, **home)
    assert found.returncode == 0, found.stderr
    assert f"using {xdg / 'portal-ops' / 'portal-ops.toml'}" in found.stderr
    _base(project)
    found = cli("config", "check", cwd=nested, **home)
    assert found.returncode == 0 and f"using {project / 'portal-ops.toml'}" in found.stderr
    here = cli("config", "check", cwd=project, **home)
    assert here.returncode == 0 and "using" not in here.stderr  # the usual place: no note
    explicit = cli(
        "config",
        "check",
        "--config",
        str(xdg / "portal-ops" / "portal-ops.toml"),
        cwd=nested,
        **home,
    )
    assert explicit.returncode == 0 and str(xdg) in explicit.stdout
    (project / "portal-ops.toml").unlink()
    (xdg / "portal-ops" / "portal-ops.toml").unlink()
    none = cli("config", "check", cwd=nested, **home)
    assert none.returncode == 2 and "looked in:" in none.stderr and str(xdg) in none.stderr


def test_cli_deploy_limited_to_an_inventory_host_over_ssh(sshd, tmp_path: Path) -> None:
    """The fleet from an INI inventory (ansible_host/port/user), reached over real SSH, and
    `deploy --hosts` on the command line touching that host alone."""
    repo = make_repo(tmp_path)
    (tmp_path / "hosts.ini").write_text(
        "[web]\n"
        + "".join(
            f"inv-{i} ansible_host={sshd.host} ansible_port={sshd.port} ansible_user={sshd.user}"
            f" portal_ops_deploy_path={tmp_path / f'inv-{i}'}\n"
            for i in (1, 2)
        )
    )
    raw = ssh_config(sshd, tmp_path, repo)
    del raw["hosts"]
    raw["inventory"] = {"file": "hosts.ini"}
    raw["rollout"]["batches"] = ["100%"]
    path = tmp_path / "portal-ops.toml"
    path.write_text(tomli_w.dumps(raw))
    shown = json.loads(cli("config", "check", "--config", str(path), "--json").stdout)
    assert [(h["name"], h["port"], h["user"]) for h in shown["config"]["hosts"]] == [
        ("inv-1", sshd.port, sshd.user),
        ("inv-2", sshd.port, sshd.user),
    ]
    ran = cli("deploy", "--config", str(path), "--hosts", "inv-2", "--revision", "v1",
              "--skip-validation", "--json")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    body = json.loads(ran.stdout)
    assert body["outcome"] == "succeeded" and list(body["hosts"]) == ["inv-2"]
    assert current(tmp_path, "inv-2") == body["release"]
    assert not (tmp_path / "inv-1").exists()  # never touched: no folder, no lock, no record
