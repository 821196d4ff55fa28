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
from .hoststate import read_records


def ensure_dirs(*paths: str) -> str:
    """``mkdir -p paths``, started only when one is missing: from a host's second
    deployment on none is, and the host starts one process less."""
    present = " && ".join(f"[ -d {q(p)} ]" for p in paths)
    return f"{{ {present} || mkdir -p {' '.join(q(p) for p in paths)}; }}"


@dataclass(frozen=True)
class Layout(HostPaths):
    """The on-host layout's commands (its paths are :class:`backend.hostpaths.HostPaths`)."""

    # -- reading state (safe to repeat) -----------------------------------------------------

    def probe(self) -> str:
        """One read: current release, releases present, the lock owner and the release log."""
        return (
            f"printf 'CURRENT=%s\\n' \"$(readlink {q(self.current)} 2>/dev/null)\"; "
            # the shell's own expansions, no process per release
            f'for d in {q(self.releases)}/*/; do [ -d "$d" ] || continue; r=${{d%/}}; r=${{r##*/}}; '
            f'if [ -e "$d{UNFINISHED_MARKER}" ]; then printf \'RELEASE=%s unfinished\\n\' "$r"; '
            "else printf 'RELEASE=%s\\n' \"$r\"; fi; done; "
            f"if [ -d {q(self.lock_dir)} ]; then printf 'LOCK=%s\\n' "
            f"\"$(cat {q(self.lock_dir)}/owner.json 2>/dev/null || echo '{{}}')\"; fi; "
            f"tail -n 200 {q(self.release_log)} 2>/dev/null | sed 's/^/LOG=/'; "
            f"{read_records(self.meta)}; true"
        )

    # -- preparing a release (the live release is untouched) -------------------------------

    def prepare_dirs(self) -> str:
        return ensure_dirs(self.releases, self.shared, posixpath.join(self.meta, "backups"))

    def update_mirror(self, repository: str) -> str:
        mirror = q(self.mirror)
        return (
            f"{ensure_dirs(self.meta)}; "
            f"if [ -d {mirror} ]; then git --git-dir={mirror} remote set-url origin {q(repository)}; "
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
            f's={q(self.meta + "/staging/" + release_id)}; rm -rf "$s"; '
            f'mkdir -p "$s" {q(self.releases)}; '
            f'touch "$s"/{q(UNFINISHED_MARKER)}; mv -T "$s" {q(rel)}; '
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

    # -- switching ---------------------------------------------------------------------------

    def switch(self, release_id: str) -> str:
        """Atomic: a new relative symlink beside ``current``, renamed over it (rename(2))."""
        tmp = posixpath.join(self.deploy_path, f".current.{release_id}.tmp")
        target = posixpath.join("releases", release_id)
        return (
            f"test -d {q(self.release(release_id))} || {{ echo {q(f'no release {release_id}')} >&2; "
            "exit 6; }; "
            f"ln -sfn {q(target)} {q(tmp)} && mv -Tf {q(tmp)} {q(self.current)} && "
            f"readlink {q(self.current)}"
        )

    # -- lock ---------------------------------------------------------------------------------

    def lock_acquire(self, owner: dict[str, Any]) -> str:
        """mkdir is atomic: exactly one of two racing deploys creates the lock directory.
        The heartbeat file's age says whether its holder still lives (backend.engine.lock)."""
        body = json.dumps(owner, sort_keys=True)
        return (
            f"{ensure_dirs(self.meta)}; if mkdir {q(self.lock_dir)} 2>/dev/null; then "
            f"printf '%s\\n' {q(body)} > {q(self.lock_dir)}/owner.json; "
            f"touch {q(self.lock_heartbeat)}; echo LOCKED; "
            f"else echo HELD; {self._lock_age()}"
            f"cat {q(self.lock_dir)}/owner.json 2>/dev/null || echo '{{}}'; fi"
        )

    def lock_renew(self, token: str) -> str:
        """The heartbeat: renewed only while the lock still holds our token."""
        return (
            f"if grep -qF {q(token)} {q(self.lock_dir)}/owner.json 2>/dev/null; then "
            f"touch {q(self.lock_heartbeat)} && echo RENEWED; else echo LOST; fi"
        )

    def lock_held(self, token: str) -> str:
        """Fencing: succeeds only while the lock holds ``token`` (else says so, exits 1).
        First in every script that changes a host, so it reads the owner's line with the
        shell's own ``read`` (one line of JSON, as written) rather than starting ``grep``."""
        owner = q(f"{self.lock_dir}/owner.json")
        return (
            f"o=; [ -f {owner} ] && {{ IFS= read -r o < {owner} || :; }}; "
            f'case "$o" in *{q(token)}*) ;; '
            "*) echo 'the deploy lock is no longer ours' >&2; exit 1;; esac"
        )

    def lock_release(self, token: str) -> str:
        """Only the holder's token removes the lock (never someone else's: Deployer #958)."""
        return (
            f"if [ ! -d {q(self.lock_dir)} ]; then echo ABSENT; "
            f"elif grep -qF {q(token)} {q(self.lock_dir)}/owner.json 2>/dev/null; then "
            f"rm -rf {q(self.lock_dir)}; echo RELEASED; "
            f"else echo NOT_OWNER; cat {q(self.lock_dir)}/owner.json 2>/dev/null; fi"
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
            f'live=$(basename "$(readlink {q(self.current)} 2>/dev/null)"); '
            f'for k in "$live" {guard}; do [ "$k" = {q(release_id)} ] && '
            f"{{ echo {q(f'kept {release_id}: it is live or the previous release')}; exit 0; }}; done; "
            f"rm -rf {q(rel)}"
        )

    def remove_backups(self, deployment_ids: list[str]) -> str:
        if not deployment_ids:
            return "true"
        return "rm -rf " + " ".join(q(self.backup_dir(d)) for d in deployment_ids)


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
