"""The on-host release layout (Capistrano/Deployer convention) as shell commands.

::

    {deploy_path}/releases/{release}/   one folder per release, never changed after switch
    {deploy_path}/shared/               linked into each release
    {deploy_path}/current -> releases/X switched atomically: new link, then rename over
    {deploy_path}/.portal-ops/          lock/, releases.jsonl, repo (git mirror), backups/

Every function returns a command string; nothing here runs anything, so the dry-run can
print exactly what a real run executes.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

from ..hostpaths import UNFINISHED_MARKER, HostPaths
from ..shell import q
from .hoststate import FINAL, record_dir


def ensure_dirs(*paths: str) -> str:
    """``mkdir -p paths``, started only when one is missing: from a host's second
    deployment on none is, and the host starts one process less."""
    present = " && ".join(f"[ -d {q(p)} ]" for p in paths)
    return f"{{ {present} || mkdir -p {' '.join(q(p) for p in paths)}; }}"


# the probe's awk: the release log (the file named by $L) kept to its last 200 lines, each
# printed as ``LOG=<line>``; one ``DEPLOY=`` line per host record file: its last version
# ended by a ``.`` line (each appended after an empty line; one cut off has no ``.`` and is
# skipped), else its lines up to the first empty one joined: a record written whole (by
# hand over several lines, or by a version that replaced the file), which versions
# appended later, or cut off, leave readable
READ_STATE = (
    'function rec() { if (c != "") print "DEPLOY=" c; else if (j != "") print "DEPLOY=" j } '
    'FILENAME == ENVIRON["L"] { n++; b[n % 200] = $0; next } '
    'FNR == 1 { if (f) rec(); f = 1; h = 1; j = ""; c = ""; p = "" } '
    '$0 == "" { h = 0; next } $0 == "." { if (p != "") c = p; p = ""; next } '
    "h { j = j $0 } { p = $0 } "
    'END { if (f) rec(); for (i = (n > 200 ? n - 199 : 1); i <= n; i++) print "LOG=" b[i % 200] }'
)


def _tar_gz(out: str, *paths: str) -> str:
    """``tar`` of ``paths`` (its words: options, then members) into ``out`` through a pipe
    to ``gzip``, failing when either fails: tar's status comes back through fd 4 (sh has no
    pipefail)."""
    words = " ".join(q(p) for p in paths)
    return (
        f"s=$( {{ {{ tar -cf - {words} 4>&-; echo $? >&4; }} | gzip -c > {q(out)}; }} 4>&1 )"
        ' && [ "$s" = 0 ]'
    )


@dataclass(frozen=True)
class Layout(HostPaths):
    """The on-host layout's commands (its paths are :class:`backend.hostpaths.HostPaths`)."""

    # -- reading state (safe to repeat) -----------------------------------------------------

    def probe(self) -> str:
        """One read: current release, releases present, the lock owner and the release log,
        with one program whatever the history (``awk``; ``readlink`` only for a ``current``
        that names no release)."""
        return (
            f"{self.read_current('c')}; printf 'CURRENT=%s\\n' \"$c\"; "
            # the shell's own expansions, no process per release
            f'for d in {q(self.releases)}/*/; do [ -d "$d" ] || continue; r=${{d%/}}; r=${{r##*/}}; '
            f'if [ -e "$d{UNFINISHED_MARKER}" ]; then printf \'RELEASE=%s unfinished\\n\' "$r"; '
            "else printf 'RELEASE=%s\\n' \"$r\"; fi; done; "
            # the owner's line (one line of JSON, as written) with the shell's own read
            f"if [ -d {q(self.lock_dir)} ]; then o=; [ -f {q(self.lock_dir + '/owner.json')} ] && "
            f"{{ IFS= read -r o < {q(self.lock_dir + '/owner.json')} || :; }}; "
            "[ -n \"$o\" ] || o='{}'; printf 'LOCK=%s\\n' \"$o\"; fi; "
            # the release log's last 200 lines and every host record: one awk
            f'set -- {q(record_dir(self.meta))}/*.json; [ -f "$1" ] || set --; '
            f'[ ! -f {q(self.release_log)} ] || set -- {q(self.release_log)} "$@"; '
            f'[ "$#" -eq 0 ] || L={q(self.release_log)} awk {q(READ_STATE)} "$@"; true'
        )

    # -- preparing a release (the live release is untouched) -------------------------------

    def prepare_dirs(self) -> str:
        return ensure_dirs(self.releases, self.shared, posixpath.join(self.meta, "backups"))

    def update_mirror(self, repository: str) -> str:
        """Fetch into the host's git mirror (a clone the first time). The remote's URL is
        set only when the mirror's config names another (read with the shell's own
        ``read``: a fetch from an unchanged repository starts no ``git remote``)."""
        mirror = q(self.mirror)
        config = q(self.mirror + "/config")
        line = q(f"\turl = {repository}")
        return (
            f"{ensure_dirs(self.meta)}; "
            f"if [ -d {mirror} ]; then u=; while IFS= read -r l; do "
            f'[ "$l" = {line} ] && u=1; done < {config}; '
            f'[ -n "$u" ] || git --git-dir={mirror} remote set-url origin {q(repository)}; '
            f"git --git-dir={mirror} fetch --prune --tags --quiet origin; "
            f"else git clone --mirror --quiet {q(repository)} {mirror}; fi"
        )

    def resolve(self, repository: str, revision: str) -> str:
        """Update the mirror and print ``REVISION=<sha>``: phase 1 resolves a branch or tag
        once, and every host then deploys that commit (a push meanwhile changes nothing)."""
        mirror = q(self.mirror)
        return (
            f"set -e; {self.update_mirror(repository)}; "
            f"rev=$(git --git-dir={mirror} rev-parse --verify --quiet {q(revision + '^{commit}')}) "
            f"|| {{ echo {q(f'revision {revision} not found in {repository}')} >&2; exit 3; }}; "
            'echo "REVISION=$rev"'
        )

    def fetch(
        self, repository: str, revision: str, release_id: str, *, replace_unfinished: bool = False
    ) -> str:
        """Update the host's git mirror, then export ``revision`` into a new release folder
        marked unfinished. Refuses to reuse an existing release folder, except (a resume)
        an unfinished one of this very release that ``current`` does not point at."""
        rel = self.release(release_id)
        mirror = q(self.mirror)
        marker = q(rel + "/" + UNFINISHED_MARKER)
        replace = (
            f'if [ -e {marker} ] && [ "$(readlink {q(self.current)})" != {q("releases/" + release_id)} ]; '
            f"then rm -rf {q(rel)}; fi; "
            if replace_unfinished
            else ""
        )
        return (
            f"set -e; {self.update_mirror(repository)}; "
            f"rev=$(git --git-dir={mirror} rev-parse --verify --quiet {q(revision + '^{commit}')}) "
            f"|| {{ echo {q(f'revision {revision} not found in {repository}')} >&2; exit 3; }}; "
            f"{replace}"
            f"if [ -e {q(rel)} ]; then echo {q(f'release folder exists already: {release_id}')} >&2; "
            "exit 4; fi; "
            # the folder appears with its marker or not at all: a kill between a mkdir and
            # a touch left an unmarked, empty release that a resume took as prepared
            f's={q(self.meta + "/staging/" + release_id)}; [ ! -e "$s" ] || rm -rf "$s"; '
            f'mkdir -p "$s" {q(self.releases)}; '
            f': > "$s"/{q(UNFINISHED_MARKER)}; mv -T "$s" {q(rel)}; '
            f'git --git-dir={mirror} archive --format=tar "$rev" | tar -x -C {q(rel)}; '
            f"printf '%s\\n' \"$rev\" > {q(rel + '/REVISION')}; "
            'echo "REVISION=$rev"'
        )

    def link_shared(self, release_id: str, dirs: list[str], files: list[str]) -> str:
        rel = self.release(release_id)
        parts = ["set -e"]
        for d in dirs:
            target, link = posixpath.join(self.shared, d), posixpath.join(rel, d)
            parts.append(
                f"mkdir -p {q(target)}; if [ -d {q(link)} ] && [ ! -L {q(link)} ]; then "
                f"cp -an {q(link)}/. {q(target)}/ 2>/dev/null || true; rm -rf {q(link)}; fi; "
                f"mkdir -p {q(posixpath.dirname(link))}; ln -sfn {q(target)} {q(link)}"
            )
        for f in files:
            target, link = posixpath.join(self.shared, f), posixpath.join(rel, f)
            parts.append(
                f"[ -e {q(target)} ] || {{ echo {q(f'missing shared file {f} (create {target} first)')}"
                " >&2; exit 5; }; "
                f"mkdir -p {q(posixpath.dirname(link))}; rm -rf {q(link)}; ln -sfn {q(target)} {q(link)}"
            )
        return "; ".join(parts)

    def mark_finished(self, release_id: str) -> str:
        return f"rm -f {q(self.release(release_id) + '/' + UNFINISHED_MARKER)}"

    def backup_code(
        self, deployment_id: str, current: str, excludes: list[str], assets: list[str]
    ) -> str:
        """The live release's code (and asset dirs) archived in this deployment's backup
        folder, each archive tested, their checksums written and printed. A fresh folder
        holds nothing to remove (``rm`` only on a retry), the sums are printed with the
        shell's own ``read`` (no ``cat``), and each archive is ``tar`` piped into ``gzip``
        (``tar -z`` starts a shell to start gzip)."""
        bdir = q(self.backup_dir(deployment_id))
        paths = ["--exclude=" + x for x in excludes]
        parts = [
            f"mkdir -p {bdir}",
            f"cd {bdir}",
            "{ [ ! -e code.tar.gz ] && [ ! -e assets.tar.gz ] && [ ! -e SHA256SUMS ]"
            " || rm -f code.tar.gz assets.tar.gz SHA256SUMS; }",
            _tar_gz("code.tar.gz", "-C", self.releases, *paths, current),
        ]
        test = "gzip -t code.tar.gz"
        if assets:
            parts.append(
                _tar_gz(
                    "assets.tar.gz", "-C", self.release(current), "--ignore-failed-read", *assets
                )
            )
            test = "gzip -t code.tar.gz assets.tar.gz"
        parts += [
            test,
            "sha256sum *.tar.gz > SHA256SUMS",
            "while IFS= read -r l; do printf '%s\\n' \"$l\"; done < SHA256SUMS",
        ]
        return " && ".join(parts)

    # -- switching ---------------------------------------------------------------------------

    def switch(self, release_id: str) -> str:
        """Atomic: a new relative symlink beside ``current``, renamed over it (rename(2)),
        then checked to lead to the release."""
        tmp = posixpath.join(self.deploy_path, f".current.{release_id}.tmp")
        target = posixpath.join("releases", release_id)
        return (
            f"test -d {q(self.release(release_id))} || {{ echo {q(f'no release {release_id}')} >&2; "
            "exit 6; }; "
            f"ln -sfn {q(target)} {q(tmp)} && mv -Tf {q(tmp)} {q(self.current)} && "
            # checked with the shell's own -ef (no readlink): current is that release now
            f"{{ [ {q(self.current)} -ef {q(self.release(release_id))} ] || "
            f"{{ echo {q(f'current does not point at {release_id}')} >&2; exit 7; }}; }} && "
            f"printf '%s\\n' {q(target)}"
        )

    # -- lock ---------------------------------------------------------------------------------

    def lock_acquire(self, owner: dict[str, Any]) -> str:
        """mkdir is atomic: exactly one of two racing deploys creates the lock directory.
        The heartbeat file's age says whether its holder still lives (backend.engine.lock);
        it is made by a redirection (no ``touch``)."""
        body = json.dumps(owner, sort_keys=True)
        return (
            f"{ensure_dirs(self.meta)}; if mkdir {q(self.lock_dir)} 2>/dev/null; then "
            f"printf '%s\\n' {q(body)} > {q(self.lock_dir)}/owner.json; "
            f": > {q(self.lock_heartbeat)}; echo LOCKED; "
            f"else echo HELD; {self._lock_age()}"
            f"cat {q(self.lock_dir)}/owner.json 2>/dev/null || echo '{{}}'; fi"
        )

    def _read_owner(self) -> str:
        """Sets ``$o`` to the lock owner's line (one line of JSON, as written), read with
        the shell's own ``read``: empty when there is no lock."""
        owner = q(f"{self.lock_dir}/owner.json")
        return f"o=; [ -f {owner} ] && {{ IFS= read -r o < {owner} || :; }}; "

    def lock_renew(self, token: str) -> str:
        """The heartbeat: renewed only while the lock still holds our token (a redirection
        truncates the empty heartbeat file, which sets its time: no process at all)."""
        return (
            f"{self._read_owner()}"
            f'case "$o" in *{q(token)}*) : > {q(self.lock_heartbeat)} && echo RENEWED;; '
            "*) echo LOST;; esac"
        )

    def lock_held(self, token: str) -> str:
        """Fencing: succeeds only while the lock holds ``token`` (else says so, exits 1).
        First in every script that changes a host, so it reads the owner's line with the
        shell's own ``read`` (one line of JSON, as written) rather than starting ``grep``."""
        return (
            f"{self._read_owner()}"
            f'case "$o" in *{q(token)}*) ;; '
            "*) echo 'the deploy lock is no longer ours' >&2; exit 1;; esac"
        )

    def if_held(self, token: str, command: str) -> str:
        """``command`` only while the lock holds ``token`` (read with the shell's own
        ``read``); nothing, and success, otherwise. ``command`` is shell text already."""
        return f'{self._read_owner()}case "$o" in *{q(token)}*) ' + command + ";; esac"

    def lock_owner_rewrite(self, owner: dict[str, Any]) -> str:
        """Replace the owner record of a lock held with ``owner``'s token (same token, new
        details: a rollback naming the deployment it picked), only while it is held so."""
        path = posixpath.join(self.lock_dir, "owner.json")
        body = json.dumps(owner, sort_keys=True)
        write = (
            f"printf '%s\\n' {q(body)} > {q(path + '.tmp')} && mv -f {q(path + '.tmp')} {q(path)}"
        )
        return self.lock_held(owner["token"]) + "; " + write

    def lock_release(self, token: str) -> str:
        """Only the holder's token removes the lock (never someone else's: Deployer #958)."""
        return (
            f"if [ ! -d {q(self.lock_dir)} ]; then echo ABSENT; "
            f"else {self._read_owner()}"
            f'case "$o" in *{q(token)}*) rm -rf {q(self.lock_dir)}; echo RELEASED;; '
            "*) echo NOT_OWNER; printf '%s\\n' \"$o\";; esac; fi"
        )

    def lock_force_remove(self) -> str:
        return f"rm -rf {q(self.lock_dir)} && echo REMOVED"

    # -- release log and pruning -------------------------------------------------------------

    def log_release(self, entry: dict[str, Any]) -> str:
        entry_line = q(json.dumps(entry, sort_keys=True))
        return f"{ensure_dirs(self.meta)}; printf '%s\\n' {entry_line} >> {q(self.release_log)}"

    def remove_releases(self, release_ids: list[str]) -> str:
        if not release_ids:
            return "true"
        return "rm -rf " + " ".join(q(self.release(r)) for r in release_ids)

    def remove_own_release(self, release_id: str, keep: list[str]) -> str:
        """Remove a release this run created, unless ``current`` points at it or it is one of
        ``keep`` (the previous release): a failed run never deletes what serves."""
        rel = self.release(release_id)
        guard = " ".join(q(k) for k in keep if k) or "''"
        return (
            f"{self.read_current('live')}; "
            f'for k in "$live" {guard}; do [ "$k" = {q(release_id)} ] && '
            f"{{ echo {q(f'kept {release_id}: it is live or the previous release')}; exit 0; }}; done; "
            f"rm -rf {q(rel)}"
        )

    def remove_backups(self, deployment_ids: list[str]) -> str:
        if not deployment_ids:
            return "true"
        return "rm -rf " + " ".join(q(self.backup_dir(d)) for d in deployment_ids)

    def prune(self, state: HostState, release_ids: list[str]) -> str:
        """Remove pruned releases with their backups and the records of their finished
        deployments (a release, its backups and its record share the deployment's id).
        Every probe reads every record, so the hosts remember deployments as long as their
        releases, not forever; an unfinished record stays until a resume or rollback ends it
        (and the crash warnings keep naming it), and the release log keeps every id."""
        finished = {
            str(r.get("deployment_id"))
            for r in state.records
            if r.get("status") in FINAL and r.get("deployment_id") in release_ids
        }
        parts = [self.remove_releases(release_ids), self.remove_backups(release_ids)]
        if finished:
            directory = record_dir(self.meta)
            parts.append(
                "rm -f "
                + " ".join(q(posixpath.join(directory, f"{d}.json")) for d in sorted(finished))
            )
        return "; ".join(parts)


@dataclass
class HostState:
    """What :meth:`Layout.probe` found on one host."""

    current: str | None  # release id
    releases: list[str]
    unfinished: list[str]
    lock: dict[str, Any] | None
    log: list[dict[str, Any]]
    records: list[dict[str, Any]] = field(default_factory=list)  # deployments (hoststate)

    @property
    def bad(self) -> set[str]:
        """Releases the log marks bad (rolled back or failed): never rollback targets."""
        state: dict[str, str] = {}
        for entry in self.log:
            state[entry.get("release", "")] = entry.get("state", "")
        return {r for r, s in state.items() if s in ("bad", "rolled_back", "failed")}

    def previous_good(self, before: str | None = None) -> str | None:
        """The newest good release older than ``before`` (default: current)."""
        pivot = before or self.current
        deployed = [e.get("release") for e in self.log if e.get("state") == "deployed"]
        candidates = [
            r
            for r in dict.fromkeys(reversed(deployed))
            if r
            and r != pivot
            and r in self.releases
            and r not in self.bad
            and r not in self.unfinished
        ]
        if pivot in deployed:
            older = deployed[: len(deployed) - deployed[::-1].index(pivot) - 1]
            candidates = [r for r in candidates if r in older]
        return candidates[0] if candidates else None


def parse_probe(output: str) -> HostState:
    current = None
    releases: list[str] = []
    unfinished: list[str] = []
    lock = None
    log: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for line in output.splitlines():
        key, _, value = line.partition("=")
        if key == "CURRENT":
            current = posixpath.basename(value.rstrip("/")) or None
        elif key == "RELEASE":
            name, _, flag = value.partition(" ")
            releases.append(name)
            if flag == "unfinished":
                unfinished.append(name)
        elif key == "LOCK":
            try:
                lock = json.loads(value or "{}")
            except ValueError:
                lock = {"raw": value}
        elif key == "LOG":
            try:
                log.append(json.loads(value))
            except ValueError:
                pass
        elif key == "DEPLOY":
            try:
                records.append(json.loads(value))
            except ValueError:
                pass
    return HostState(current, releases, unfinished, lock, log, records)


def prune_candidates(state: HostState, keep: int, protect: set[str]) -> list[str]:
    """Releases to delete: keep the newest ``keep`` good ones, and never current, previous or
    anything in ``protect``; unfinished and bad ones do not count toward ``keep`` (so failed
    deploys can never push the last good release out: Deployer #814)."""
    bad = state.bad | set(state.unfinished)
    good = [r for r in sorted(state.releases, reverse=True) if r not in bad]
    keep_set = set(good[:keep]) | protect
    if state.current:
        keep_set.add(state.current)
        prev = state.previous_good()
        if prev:
            keep_set.add(prev)
    return [r for r in sorted(state.releases) if r not in keep_set]
