"""What a host pays per command: the process starts of our own shell code.

Every process a host starts for us costs it a fork and an exec (about a millisecond of CPU
each on a small VM); a deploy's wall time on a loaded host is mostly these. The tests run
our shell code with a PATH that holds only the programs it may start, so a process start
that comes back (a ``basename`` per release, a ``tr`` per host record, an ``id`` per
command) fails them."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from backend.engine.hoststate import write_record
from backend.engine.layout import Layout, parse_probe
from backend.script import ScriptParser, Step, compose, compose_parallel, new_nonce
from backend.transport import CommandResult
from backend.transport.remote_group import new_pidfile, wrap

from .faults import processes_with, ssh_host, unique_marker, wait_until
from .helpers import stored_record


def only_on_path(tmp_path: Path, *programs: str) -> str:
    """A PATH with nothing but ``programs`` on it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in programs:
        found = shutil.which(name)
        assert found, name
        link = bin_dir / name
        if not link.exists():
            link.symlink_to(found)
    return str(bin_dir)


def test_the_probe_starts_no_process_per_release_or_record(tmp_path: Path) -> None:
    """The probe reads the live release, 3 releases, the lock's owner, the release log and
    30 host records with one program (awk): its cost does not grow with the history."""
    root = tmp_path / "app"
    meta = root / ".portal-ops"
    (meta / "deployments").mkdir(parents=True)
    (meta / "lock").mkdir()
    for name in ("r1", "r2", "r3"):
        (root / "releases" / name).mkdir(parents=True)
    (root / "releases" / "r3" / ".portal-ops-unfinished").touch()
    (root / "current").symlink_to("releases/r2")
    (meta / "lock" / "owner.json").write_text('{"token": "t", "note": "a \\\\ b"}\n')
    (meta / "releases.jsonl").write_text(
        "".join(json.dumps({"release": f"r{i}", "state": "deployed"}) + "\n" for i in (1, 2))
    )
    records = {f"d{i:02d}": {"deployment_id": f"d{i:02d}", "n": i} for i in range(30)}
    for name, record in records.items():
        (meta / "deployments" / f"{name}.json").write_text(json.dumps(record) + "\n")
    # a record written by hand over several lines, one without its last newline
    (meta / "deployments" / "d00.json").write_text('{"deployment_id":\n "d00", "n": 0}\n')
    (meta / "deployments" / "d01.json").write_text(json.dumps(records["d01"]))
    (meta / "deployments" / ".d02.json.tmp").write_text("half a rec")  # being replaced

    path = only_on_path(tmp_path, "sh", "awk")
    out = subprocess.run(
        ["sh", "-c", Layout(str(root)).probe()],
        env={"PATH": path},
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    )
    assert out.stderr == ""
    state = parse_probe(out.stdout)
    assert state.current == "r2"
    assert state.releases == ["r1", "r2", "r3"]
    assert state.unfinished == ["r3"]
    assert state.lock == {"token": "t", "note": "a \\ b"}
    assert [e["release"] for e in state.log] == ["r1", "r2"]
    assert sorted(r["deployment_id"] for r in state.records) == sorted(records)
    assert {r["deployment_id"]: r for r in state.records} == records


def test_the_probe_of_an_empty_host_says_so(tmp_path: Path) -> None:
    path = only_on_path(tmp_path, "sh", "awk")
    out = subprocess.run(
        ["sh", "-c", Layout(str(tmp_path / "none")).probe()],
        env={"PATH": path},
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    )
    state = parse_probe(out.stdout)
    assert (state.current, state.releases, state.lock, state.log, state.records) == (
        None,
        [],
        None,
        [],
        [],
    )
    # a current that names no release there (dangling) is read with readlink
    root = tmp_path / "dangling"
    root.mkdir()
    (root / "current").symlink_to("releases/zz")
    out = subprocess.run(
        ["sh", "-c", Layout(str(root)).probe()],
        env={"PATH": only_on_path(tmp_path, "sh", "awk", "readlink")},
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    )
    assert parse_probe(out.stdout).current == "zz"


async def test_the_wrapper_needs_no_id_and_no_cat(sshd, tmp_path: Path) -> None:
    """The wrapper names its run dir after the uid and watches the session's stdin with
    shell builtins: with only sh, setsid and rm on PATH its pid file is where a kill looks,
    the command runs, and end-of-file on stdin still kills its group."""
    path = only_on_path(tmp_path, "sh", "setsid", "rm", "mkdir", "sleep", "touch")
    host = ssh_host(sshd)
    await host.connect()
    try:
        assert host._conn is not None
        ran = tmp_path / "ran"
        proc = await host._conn.create_process(
            f"export PATH={path}; " + wrap(f"touch {ran}", new_pidfile("dep.cost-a"))
        )
        await asyncio.wait_for(proc.wait_closed(), 10)
        assert proc.exit_status == 0, await proc.stderr.read()
        assert ran.exists()

        marker = unique_marker("cost")
        run_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"portal-ops-run-{os.getuid()}"
        proc = await host._conn.create_process(
            f"export PATH={path}; "
            + wrap(f"sh -c 'sleep 30' {marker}", new_pidfile(f"dep.cost-{marker}"))
        )
        await wait_until(lambda: processes_with(f"sleep 30 {marker}"), 10, "started")
        assert list(run_dir.glob(f"dep.cost-{marker}.*.pid")), "pid file not in the uid's dir"
        proc.stdin.write_eof()  # the session's end as the watcher sees it
        await asyncio.wait_for(proc.wait_closed(), 10)
        await wait_until(lambda: not processes_with(marker), 10, "group killed")
    finally:
        await host.close()


def sh(command: str, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", command], env={"PATH": path}, capture_output=True, text=True, timeout=20
    )


def test_the_fence_and_the_host_record_start_no_process(tmp_path: Path) -> None:
    """The fencing step (first in every script that changes a host under the lock) reads
    the lock's token with the shell's own ``read``; the host record is written by the shell
    itself once its folder exists."""
    layout = Layout(str(tmp_path / "app"))
    only_sh = only_on_path(tmp_path, "sh")
    assert sh(layout.lock_held("tok123"), only_sh).returncode == 1  # no lock at all
    Path(layout.lock_dir).mkdir(parents=True)
    owner = Path(layout.lock_dir) / "owner.json"
    owner.write_text('{"deployment_id": "d1", "token": "tok123"}\n')
    assert sh(layout.lock_held("tok123"), only_sh).returncode == 0
    owner.write_text('{"deployment_id": "d2", "token": "tok999"}')  # taken over
    taken = sh(layout.lock_held("tok123"), only_sh)
    assert taken.returncode == 1
    assert "no longer ours" in taken.stderr

    record = {"deployment_id": "d1", "phase": "prepare", "note": "it's \\ $HOME"}
    first = sh(write_record(layout.meta, record), only_on_path(tmp_path, "sh", "mkdir"))
    assert first.returncode == 0, first.stderr
    sh_only = str(tmp_path / "sh-only")
    Path(sh_only).mkdir()
    Path(sh_only, "sh").symlink_to(shutil.which("sh") or "")
    again = sh(write_record(layout.meta, record | {"phase": "switch"}), sh_only)
    assert again.returncode == 0, again.stderr
    stored = stored_record(Path(layout.meta) / "deployments" / "d1.json")
    assert stored == record | {"phase": "switch"}


def run_parallel(steps: list[Step], path: str) -> list[tuple[int, str, str]]:
    """``steps`` side by side with only ``path``'s programs (the script's shell by its
    full path, as sshd starts it): each step's status, stdout, stderr."""
    _, results = run_here(steps, compose_parallel, {"PATH": path})
    return [(r.exit_status, r.stdout, r.stderr) for r in results]


def run_here(
    steps: list[Step],
    composer: Callable[[list[Step], str], str],
    env: dict[str, str],
    cwd: Path | None = None,
) -> tuple[int, list[CommandResult]]:
    """``steps`` composed by ``composer`` run by this machine's ``sh`` (as sshd starts the
    script's shell), parsed back: (the script's exit status, each step's result)."""
    nonce = new_nonce()
    parser = ScriptParser(steps, nonce, lambda i: None, lambda i, s, line: None, lambda i, s: None)
    out = subprocess.run(
        [shutil.which("sh") or "/bin/sh", "-c", composer(steps, nonce)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=20,
    )
    for stream, text in (("stdout", out.stdout), ("stderr", out.stderr)):
        for line in text.splitlines():
            parser.feed(stream, line)
    parser.close()
    return out.returncode, parser.results("x")


def test_parallel_checks_start_no_shell_and_no_cat_of_their_own(tmp_path: Path) -> None:
    """Side-by-side checks: each runs in a subshell of the script's shell (no ``sh`` of
    its own), a status is read with ``read``, and a check's few lines of output are shown
    with the shell's own ``read`` and ``printf`` (no ``cat``): checks cost the host no
    process beyond their own, whether they print or not."""
    steps = [Step(f"check-{i}", f"exit {i}", readonly=True, may_fail=True) for i in range(3)]
    steps.append(
        Step("says", "printf '%s\\n' 'a  b\\c'; echo oops >&2; printf last", readonly=True)
    )
    steps.append(Step("cd", "cd / && x=1 && echo here", readonly=True))
    steps.append(Step("sees", 'echo "x=${x-unset}"', readonly=True))
    only = only_on_path(tmp_path, "mktemp", "rm")
    assert run_parallel(steps, only) == [
        (0, "", ""),
        (1, "", ""),
        (2, "", ""),
        (0, "a  b\\c\nlast", "oops"),
        (0, "here", ""),
        (0, "x=unset", ""),
    ]
    long = Step("long", 'i=0; while [ "$i" -lt 250 ]; do echo "$i"; i=$((i+1)); done')
    got = run_parallel([long], only_on_path(tmp_path, "mktemp", "rm", "cat"))
    assert got == [(0, "\n".join(str(i) for i in range(250)), "")]


def test_a_scripts_steps_start_no_shell_of_their_own(tmp_path: Path) -> None:
    """Each step runs in a subshell of the script's shell (a fork, no exec of ``sh``), and
    is still on its own: its ``cd``, variables, ``set -e`` and ``exit`` stay its own, and a
    step that does not parse fails alone, as with ``sh -c``."""
    steps = [
        Step("a", "cd /; x=1; set -e; echo a"),
        Step("b", 'pwd; echo "x=${x-unset}"; false; echo b-goes-on'),
        Step("c", "if then fi", may_fail=True),
        Step("d", "exit 3"),
        Step("e", "echo never"),
    ]
    env = {"PATH": str(tmp_path / "empty"), "HOME": str(tmp_path)}
    status, results = run_here(steps, compose, env, cwd=tmp_path)
    assert status == 3
    assert [r.exit_status for r in results[:2]] == [0, 0]
    assert results[0].stdout == "a"
    assert results[1].stdout == f"{tmp_path}\nx=unset\nb-goes-on"
    assert results[2].exit_status == 2 and results[2].stderr  # the shell's own complaint
    assert results[3].exit_status == 3
    assert len(results) == 4


def test_folders_that_exist_cost_no_mkdir(tmp_path: Path) -> None:
    """The release dirs, the meta dir of the release log: made on a host's first deployment,
    then only checked (a test, no process)."""
    layout = Layout(str(tmp_path / "app"))
    with_mkdir = only_on_path(tmp_path, "sh", "mkdir")
    first = sh(f"{layout.prepare_dirs()} && {layout.log_release({'release': 'r1'})}", with_mkdir)
    assert first.returncode == 0, first.stderr
    only_sh = str(tmp_path / "only-sh")
    Path(only_sh).mkdir()
    Path(only_sh, "sh").symlink_to(shutil.which("sh") or "")
    again = sh(f"{layout.prepare_dirs()} && {layout.log_release({'release': 'r2'})}", only_sh)
    assert again.returncode == 0, again.stderr
    assert Path(layout.release_log).read_text().count("release") == 2
    assert Path(layout.meta, "backups").is_dir() and Path(layout.shared).is_dir()


def test_the_lock_is_taken_renewed_and_given_back_with_builtins(tmp_path: Path) -> None:
    """Taking the lock starts one ``mkdir`` (atomic: the lock itself) and no ``touch``;
    renewing it and checking its token start nothing; giving it back starts one ``rm``."""
    layout = Layout(str(tmp_path / "app"))
    Path(layout.meta).mkdir(parents=True)
    owner = {"deployment_id": "d1", "token": "tok123"}
    taken = sh(layout.lock_acquire(owner), only_on_path(tmp_path, "sh", "mkdir"))
    assert taken.stdout.strip() == "LOCKED", taken.stderr
    assert Path(layout.lock_heartbeat).exists()
    only_sh = str(tmp_path / "only-sh")
    Path(only_sh).mkdir()
    Path(only_sh, "sh").symlink_to(shutil.which("sh") or "")
    assert sh(layout.lock_renew("tok123"), only_sh).stdout.strip() == "RENEWED"
    assert sh(layout.lock_renew("other"), only_sh).stdout.strip() == "LOST"
    kept = sh(layout.lock_release("other"), only_sh)
    assert kept.stdout.splitlines()[0] == "NOT_OWNER", kept.stderr
    assert json.loads(kept.stdout.splitlines()[1]) == owner
    with_rm = str(tmp_path / "sh-rm")
    Path(with_rm).mkdir()
    Path(with_rm, "sh").symlink_to(shutil.which("sh") or "")
    Path(with_rm, "rm").symlink_to(shutil.which("rm") or "")
    assert sh(layout.lock_release("tok123"), with_rm).stdout.strip() == "RELEASED"
    assert not Path(layout.lock_dir).exists()
    assert sh(layout.lock_release("tok123"), only_sh).stdout.strip() == "ABSENT"


def test_the_record_reads_the_previous_release_without_sed(tmp_path: Path) -> None:
    """Phase 1's record names the previous release read on the host with the shell's own
    ``-ef`` (no process; a name that needs JSON escaping still gets it); ``readlink`` only
    for a link that names no release there."""
    layout = Layout(str(tmp_path / "app"))
    Path(layout.release("r1")).mkdir(parents=True)
    (Path(layout.deploy_path) / "current").symlink_to("releases/r1")
    record = {"deployment_id": "d1", "status": "running"}
    command = write_record(layout.meta, record, previous_read=layout.read_current("p"))
    done = sh(command, only_on_path(tmp_path, "sh", "mkdir"))
    assert done.returncode == 0, done.stderr
    stored = Path(layout.meta) / "deployments" / "d1.json"
    assert stored_record(stored) == record | {"previous": "r1"}
    (Path(layout.deploy_path) / "current").unlink()
    Path(layout.release('a"b\\c')).mkdir()
    (Path(layout.deploy_path) / "current").symlink_to('releases/a"b\\c')
    done = sh(command, only_on_path(tmp_path, "sh", "mkdir", "sed"))
    assert done.returncode == 0, done.stderr
    assert (stored_record(stored) or {})["previous"] == 'a"b\\c'
    (Path(layout.deploy_path) / "current").unlink()
    (Path(layout.deploy_path) / "current").symlink_to("releases/gone")  # dangling
    done = sh(command, only_on_path(tmp_path, "sh", "mkdir", "readlink"))
    assert done.returncode == 0, done.stderr
    assert (stored_record(stored) or {})["previous"] == "gone"


def test_the_switch_is_checked_without_readlink(tmp_path: Path) -> None:
    layout = Layout(str(tmp_path / "app"))
    Path(layout.release("r2")).mkdir(parents=True)
    done = sh(layout.switch("r2"), only_on_path(tmp_path, "sh", "ln", "mv"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "releases/r2\n"
    assert os.readlink(layout.current) == "releases/r2"


def test_a_code_backup_starts_no_rm_and_no_cat(tmp_path: Path) -> None:
    """The code backup of a host: its folder, the archive, its test and its checksum; no
    ``rm`` of files a fresh folder cannot hold, no ``cat`` of the sums, no shell between
    ``tar`` and ``gzip``; a failing ``tar`` fails it."""
    layout = Layout(str(tmp_path / "app"))
    (Path(layout.release("r1")) / "sub").mkdir(parents=True)
    (Path(layout.release("r1")) / "sub" / "f").write_text("x\n")
    path = only_on_path(tmp_path, "sh", "mkdir", "tar", "sha256sum")
    parents = tmp_path / "gzip-parents"
    # gzip says who started its parent: tar -z starts a shell that starts gzip
    shim = Path(path) / "gzip"
    shim.write_text(
        f'#!/bin/sh\nread -r l < /proc/$PPID/stat; l=${{l##*") "}}; l=${{l#* }}\n'
        f'read -r p < /proc/${{l%% *}}/comm; echo "$p" >> {parents}\n'
        f'exec {shutil.which("gzip")} "$@"\n'
    )
    shim.chmod(0o755)
    command = layout.backup_code("d2", "r1", excludes=[".venv"], assets=[])
    first = sh(command, path)
    assert first.returncode == 0, first.stderr
    assert "tar" not in parents.read_text().split(), parents.read_text()
    assert first.stdout.strip().endswith("code.tar.gz")
    bdir = Path(layout.backup_dir("d2"))
    assert sorted(p.name for p in bdir.iterdir()) == ["SHA256SUMS", "code.tar.gz"]
    assert first.stdout.strip() == (bdir / "SHA256SUMS").read_text().strip()
    again = sh(command, only_on_path(tmp_path, "sh", "mkdir", "tar", "gzip", "sha256sum", "rm"))
    assert again.returncode == 0 and again.stdout == first.stdout  # a retry rewrites it
    # tar failing (no such release) fails the backup, though gzip, last in the pipe, succeeds
    missing = sh(layout.backup_code("d3", "gone", excludes=[], assets=[]), path)
    assert missing.returncode != 0 and "gone" in missing.stderr


def test_a_second_fetch_starts_no_rm_touch_or_remote_set_url(tmp_path: Path) -> None:
    """From a host's second deployment on, the fetch sets the mirror's URL only when it
    changed (read from the mirror's config with builtins), makes the release folder's
    marker with a redirection (no ``touch``) and removes no staging folder that is not
    there (no ``rm``)."""
    from .helpers import make_repo

    repo = make_repo(tmp_path)
    layout = Layout(str(tmp_path / "app"))
    real = shutil.which("git") or "git"
    calls = tmp_path / "git-calls"
    path = only_on_path(tmp_path, "sh", "mkdir", "mv", "tar", "readlink")
    shim = Path(path) / "git"
    shim.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {real} "$@"\n')
    shim.chmod(0o755)
    first = sh(layout.fetch(str(repo), "v1", "r1"), path + ":/usr/bin")  # a first clone
    assert first.returncode == 0, first.stderr
    calls.write_text("")
    again = sh(layout.fetch(str(repo), "v2", "r2"), path)
    assert again.returncode == 0, again.stderr
    assert "REVISION=" in again.stdout
    assert (Path(layout.release("r2")) / "VERSION").read_text() == "2\n"
    assert (Path(layout.release("r2")) / ".portal-ops-unfinished").exists()
    assert not any("set-url" in line for line in calls.read_text().splitlines())
    moved = sh(layout.fetch(str(tmp_path / "elsewhere"), "v2", "r3"), path)
    assert "set-url" in calls.read_text()  # a new URL is set (the fetch then fails: no repo)
    assert moved.returncode != 0
