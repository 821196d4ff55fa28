"""Hostile or careless input, tried the way an operator would: through the real CLI.

Every probe must end with exit 2, a message naming the key or value, no traceback, and the
state dir (journal, flag store, reports) and the hosts' trees byte-identical before and
after."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
[portal]
name = "hostile"
repository = "{repo}"
deploy_path = "{host}"
{portal_extra}

[[hosts]]
name = "web-1"
address = "127.0.0.1"
transport = "local"
{host_extra}

[state]
dir = "{state}"

{extra}
"""


def snapshot(*roots: Path) -> dict[str, str]:
    """Every path under ``roots`` with a digest of its bytes (or its link target)."""
    out: dict[str, str] = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_symlink():
                out[str(p)] = "-> " + os.readlink(p)
            elif p.is_file():
                out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[str(p)] = "dir"
    return out


class World:
    """A config, a state dir with a journal and flag store in use, and a host tree."""

    def __init__(self, tmp: Path, template: Path | None = None) -> None:
        """A new world, or a copy of ``template`` (a world already set up) under ``tmp``."""
        self.tmp = tmp
        self.state = tmp / "state"
        self.host = tmp / "host"
        if template is not None:
            for part in (self.state, self.host):
                shutil.copytree(template / part.name, part, symlinks=True)
            self.config = self.write()
        else:
            self.state.mkdir()
            (self.host / "releases" / "r1").mkdir(parents=True)
            (self.host / "current").symlink_to("releases/r1")
            self.config = self.write()
            # put the journal and the flag store in use, as a real state dir would be
            self.cli("history")
            self.cli("feature", "create", "probe-flag", "--description", "a flag")
        self.before = snapshot(self.state, self.host)

    def write(
        self, portal_extra: str = "", host_extra: str = "", extra: str = "", name: str = "ok"
    ) -> Path:
        path = self.tmp / f"{name}.toml"
        path.write_text(
            GOOD.format(
                repo=self.tmp / "repo",
                host=self.host,
                state=self.state,
                portal_extra=portal_extra,
                host_extra=host_extra,
                extra=extra,
            )
        )
        return path

    def cli(self, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PORTAL_OPS_CONFIG": str(config or self.config)}
        env.pop("PORTAL_OPS_STATE_DIR", None)
        return subprocess.run(
            [sys.executable, "-m", "tui.cli", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=60,
            check=False,
        )

    def refused(self, result: subprocess.CompletedProcess[str], *names: str) -> None:
        assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout, result.stderr
        for name in names:
            assert name in result.stderr, (name, result.stderr)
        assert snapshot(self.state, self.host) == self.before, "something changed"


@pytest.fixture(scope="module")
def world_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One world set up through the real CLI, once: each test gets a copy of it (two CLI
    runs, about a second of CPU, saved per test)."""
    root = tmp_path_factory.mktemp("hostile-world")
    World(root)
    return root


@pytest.fixture
def world(tmp_path: Path, world_template: Path) -> World:
    return World(tmp_path, template=world_template)


BAD_CONFIGS = [
    # (portal_extra, host_extra, extra, key named in the message)
    ("", "", '[load_balancer]\nkind = "command"\n'
     "drain_command = \"echo 'disable server portal/{{backend}}' | socat stdio /x\"\n"
     'enable_command = "true {{backend}}"', "load_balancer.drain_command"),
    ("", "", '[commands]\nmigrate = "php artisan migrate {{release}}"', "commands.migrate"),
    ("", "", '[commands]\ninstall = "make {{relase}}"', "commands.install"),
    ('env = { "A=1;touch /tmp/x;B" = "v" }', "", "", "portal.env"),
    ('shared_dirs = [""]', "", "", "portal.shared_dirs"),
    ('shared_dirs = ["."]', "", "", "portal.shared_dirs"),
    ('shared_files = ["../etc/passwd"]', "", "", "portal.shared_files"),
    ('asset_dirs = ["/abs"]', "", "", "portal.asset_dirs"),
    ("", 'deploy_path = "relative/path"', "", "hosts[0] (web-1).deploy_path"),
    ("", 'deploy_path = "/"', "", "hosts[0] (web-1).deploy_path"),
    ("", 'deploy_path = "/etc"', "", "hosts[0] (web-1).deploy_path"),
    ("", 'deploy_path = "/srv/portal/../.."', "", "hosts[0] (web-1).deploy_path"),
]  # fmt: skip


CONFIG_COMMANDS = (("config", "check"), ("deploy",), ("rollback", "--dry-run"))


@pytest.mark.parametrize(
    ("portal_extra", "host_extra", "extra", "key", "commands"),
    # Every command loads its config through the same door: the first bad config goes
    # through all three, the others each through one, in turn (every key, every command).
    [
        (*case, CONFIG_COMMANDS if i == 0 else (CONFIG_COMMANDS[i % 3],))
        for i, case in enumerate(BAD_CONFIGS)
    ],
)
def test_a_bad_config_is_refused_naming_the_key(
    world: World,
    portal_extra: str,
    host_extra: str,
    extra: str,
    key: str,
    commands: tuple[tuple[str, ...], ...],
) -> None:
    bad = world.write(portal_extra, host_extra, extra, name="bad")
    for args in commands:
        world.refused(world.cli(*args, config=bad), str(bad), key)


def test_deploy_path_root_in_portal_section(world: World) -> None:
    text = world.config.read_text().replace(f'deploy_path = "{world.host}"', 'deploy_path = "/"')
    bad = world.tmp / "root.toml"
    bad.write_text(text)
    world.refused(world.cli("deploy", config=bad), "portal.deploy_path")


def test_state_dir_that_is_a_file(world: World) -> None:
    afile = world.tmp / "not-a-dir"
    afile.write_text("x")
    bad = world.tmp / "statefile.toml"
    bad.write_text(world.config.read_text().replace(str(world.state), str(afile)))
    world.refused(world.cli("history", config=bad), "state.dir")
    assert afile.read_text() == "x"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'[portal]\nname = "caf\xe9"\n', "not UTF-8"),
        (b"[portal\n", "not valid TOML"),
        (None, "cannot read"),
    ],
)
def test_an_unreadable_config_names_the_file(
    world: World, content: bytes | None, expected: str
) -> None:
    bad = world.tmp / "bad.toml"
    if content is None:
        bad.mkdir()  # a directory where the file should be
    else:
        bad.write_bytes(content)
    world.refused(world.cli("deploy", config=bad), str(bad), expected)


@pytest.mark.parametrize(
    "args",
    [
        ("history", "--limit", "-1"),
        ("history", "--limit", "0"),
        ("monitor", "../../x"),
        ("show", "../x"),
        ("rollback", "--dry-run", "../../x"),
        ("resume", "bp-1/../../x"),
        ("validate", "post", "../x"),
        ("notify", "deployment-success", "--dry-run", "--deployment-id", "../x"),
    ],
)
def test_command_line_values_are_checked(world: World, args: tuple[str, ...]) -> None:
    expected = "is not a deployment id" if args[0] == "rollback" else "Invalid value"
    world.refused(world.cli(*args), expected)


# (id, text, which of the four commands below get it): each rule (a control character,
# the length) goes through every command; the other control characters through two.
TEXT_CASES = [
    ("newline", "ok\nbp-20250101-0000  FORGED  succeeded", (0, 1, 2, 3)),
    ("osc-escape", "title \x1b]0;owned\x07", (0, 2)),
    ("bell", "bell \x07", (1, 3)),
    ("120k", "x" * 120_000, (0, 1, 2, 3)),
]


@pytest.mark.parametrize(
    ("text", "commands"), [case[1:] for case in TEXT_CASES], ids=[c[0] for c in TEXT_CASES]
)
def test_operator_text_with_control_characters_or_too_long_is_refused(
    world: World, text: str, commands: tuple[int, ...]
) -> None:
    probes = [
        (("rollback", "--dry-run", "bp-20250101-0000", text), "REASON"),
        (("notify", "deployment-success", text, "--dry-run"), "MESSAGE"),
        # a newline in a flag's reason or description forged a line of `feature history`
        (("feature", "create", "new-flag", "--description", text), "DESCRIPTION"),
        (("feature", "emergency-disable", "--reason", text), "REASON"),
    ]
    for i in commands:
        args, name = probes[i]
        world.refused(world.cli(*args), name)


def test_printed_text_cannot_forge_lines_or_reach_the_terminal() -> None:
    """Host output and stored text are shown escaped: one event, one line, no escapes."""
    import io

    from backend.events import Event, Kind
    from backend.inputs import printable
    from tui.commands.printer import EventPrinter

    out = io.StringIO()
    printer = EventPrinter(out)
    printer(Event(Kind.INCIDENT, "bp-1", data={"message": "a\nbp-2 FORGED\x1b]0;owned\x07"}))
    printer(Event(Kind.ROLLBACK_STARTED, "bp-1", run="rollback", data={"reason": "r\r\x9bX"}))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
    assert "\\n" in lines[0] and "\\x1b" in lines[0]
    assert printable("x" * 3000, 2000) == "x" * 1999 + "…"
