"""The deployment in flight, as each host records it: the source of truth for recovery.

Before every irreversible step (switch, migrate, restore, drain) a deployment writes a small
JSON record to ``{deploy_path}/.portal-ops/deployments/{id}.json`` on its hosts: id, phase,
status, release, revision SHA, this host's previous release, the migration baseline (what
``migrate_status`` reported before ``migrate`` ran), lock token, operator, machine.
``rollback``, ``resume``, ``history`` and ``show`` read these records, so they work from any
machine that has the config; the local journal is a cache of them.

Each new version of a record is appended to its file between an empty line and a line
``.``, by the shell itself (no ``mv`` per record: a deployment writes several per host); the
last version so ended is the record. A write cut off in the middle (a kill between the
shell's writes) has no ``.`` after it and is never read: the previous version stands, as a
rename would have left it. A file that starts with a record written whole (by hand, or by
a version that replaced the file) reads as that record, up to its first empty line, until
a version appended after it is ended.
"""

from __future__ import annotations

import json
import posixpath
import time
from dataclasses import dataclass, field
from typing import Any

from ..shell import q

RECORD_DIR = "deployments"

# statuses after which a deployment changes nothing more on its own
FINAL = {"succeeded", "failed", "rolled_back", "partial"}
# statuses a resume can continue and a rollback can undo
UNFINISHED = {"running", "interrupted", "paused", "rolling_back"}


def record_dir(meta: str) -> str:
    return posixpath.join(meta, RECORD_DIR)


# stands for the previous release in a record whose ``previous`` the host fills in
_PREVIOUS_ON_HOST = "@@portal-ops-previous@@"


def write_record(meta: str, record: dict[str, Any], *, previous_read: str | None = None) -> str:
    """The command that writes this deployment's record on one host: appended, ended by
    a ``.`` line (see the module's docstring). ``previous_read``: shell code that leaves in
    ``$p`` the release the host serves, written as ``previous`` (read there, when the
    record goes out in the same script as the probe: ``Layout.read_current("p")``)."""
    directory = record_dir(meta)
    final = posixpath.join(directory, f"{record['deployment_id']}.json")

    def write(body: str) -> str:
        # the folder exists from the second record on: no mkdir then; the leading newline
        # ends whatever a cut-off write left, so this version starts a line of its own
        return f"{{ [ -d {q(directory)} ] || mkdir -p {q(directory)}; }} && printf '\\n%s\\n.\\n' {body} >> {q(final)}"

    if previous_read is None:
        return write(q(json.dumps(record, sort_keys=True, default=str)))
    body = json.dumps(record | {"previous": _PREVIOUS_ON_HOST}, sort_keys=True, default=str)
    head, tail = body.split(json.dumps(_PREVIOUS_ON_HOST), 1)
    # the release as a JSON string; no link yet (a first deployment): null
    previous = (
        f"{previous_read}; "
        + r"""if [ -n "$p" ]; then """
        # sed only for a name that needs JSON escaping (never one portal-ops makes)
        + r"""case "$p" in *[\\\"]*) p=$(printf '%s' "$p" | sed 's/[\\"]/\\&/g');; esac; """
        + r"""p="\"$p\""; else p=null; fi; """
    )
    return previous + write(f'{q(head)}"$p"{q(tail)}')


@dataclass
class DeploymentView:
    """One deployment merged from every host's record (and what the hosts serve)."""

    deployment_id: str
    release: str = ""
    revision: str = ""
    status: str = ""
    number: int = 0
    phase: str = ""
    started_at: float = 0.0
    updated_at: float = 0.0
    operator: str = ""
    machine: str = ""
    pid: int = 0
    lock_token: str = ""
    baseline: dict[str, Any] | None = None
    migrations_applied: int | None = None
    backups: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    previous: dict[str, str | None] = field(default_factory=dict)
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> its record
    live_on: list[str] = field(default_factory=list)  # hosts whose current is this release

    @property
    def unfinished(self) -> bool:
        return self.status in UNFINISHED

    @property
    def drained(self) -> list[str]:
        """Hosts this deployment took out of the load balancer and has not put back."""
        return sorted(h for h, r in self.hosts.items() if r.get("traffic") == "drained")

    def checkpoint(self) -> dict[str, Any]:
        """The same shape the journal's checkpoints have, for rollback and resume."""
        return {
            "release": self.release,
            "revision": self.revision,
            "previous": dict(self.previous),
            "migrations_applied": self.migrations_applied,
            "pending_before": (self.baseline or {}).get("pending"),
            "baseline": self.baseline,
            "backups": self.backups,
            "lock_token": self.lock_token,
            "switched": list(self.live_on),
            "active": sorted(self.hosts),
            "failed_hosts": {},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.deployment_id,
            "release": self.release,
            "revision": self.revision,
            "status": self.status,
            "phase": self.phase,
            "number": self.number,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "operator": self.operator,
            "machine": self.machine,
            "live_on": self.live_on,
            "hosts": sorted(self.hosts),
        }


# a host's status wins over another's when it says more about what happened
_STATUS_RANK = {
    "running": 1,
    "paused": 2,
    "interrupted": 3,
    "rolling_back": 4,
    "failed": 5,
    "partial": 6,
    "succeeded": 7,
    "rolled_back": 8,
}


def merge(states: dict[str, Any]) -> dict[str, DeploymentView]:
    """Every deployment any host recorded, merged across hosts (``states``: host -> HostState)."""
    views: dict[str, DeploymentView] = {}
    for host, state in states.items():
        for record in getattr(state, "records", []):
            did = str(record.get("deployment_id") or "")
            if not did:
                continue
            view = views.setdefault(did, DeploymentView(did))
            view.hosts[host] = record
            view.release = view.release or str(record.get("release") or "")
            view.revision = view.revision or str(record.get("revision") or "")
            started = float(record.get("started_at") or 0)
            if started and (not view.started_at or started < view.started_at):
                view.started_at = started
            updated = float(record.get("updated_at") or 0)
            status = str(record.get("status") or "")
            if _STATUS_RANK.get(status, 0) >= _STATUS_RANK.get(view.status, 0):
                view.status = status
            if updated >= view.updated_at:
                view.updated_at = updated
            if int(record.get("number") or 0) >= view.number:
                view.number = int(record.get("number") or 0)
                view.phase = str(record.get("phase") or "")
            for key in ("operator", "machine", "lock_token"):
                if record.get(key) and not getattr(view, key):
                    setattr(view, key, str(record[key]))
            view.pid = view.pid or int(record.get("pid") or 0)
            if record.get("baseline") and view.baseline is None:
                view.baseline = dict(record["baseline"])
            if record.get("migrations_applied") is not None:
                applied = int(record["migrations_applied"])
                view.migrations_applied = max(view.migrations_applied or 0, applied)
            if record.get("backups"):
                view.backups = merge_backups(view.backups, record["backups"])
            if record.get("options"):
                view.options = view.options or dict(record["options"])
            view.previous[host] = record.get("previous")
            live = view.release and getattr(state, "current", None) == view.release
            if live and host not in view.live_on:
                view.live_on.append(host)
    return views


def newest(views: dict[str, DeploymentView]) -> DeploymentView | None:
    """The most recently started deployment the hosts know of."""
    if not views:
        return None
    return max(views.values(), key=lambda v: (v.started_at, v.deployment_id))


def newer_than(views: dict[str, DeploymentView], view: DeploymentView) -> list[DeploymentView]:
    """Deployments started after ``view`` whose code or schema may still be live: their
    release serves somewhere, or they never finished (a migration may be theirs)."""
    out = [
        v
        for v in views.values()
        if v.deployment_id != view.deployment_id
        and v.started_at > view.started_at
        and (v.live_on or v.unfinished or v.status in ("succeeded", "partial"))
    ]
    return sorted(out, key=lambda v: v.started_at)


def record_for(
    *,
    deployment_id: str,
    release: str,
    revision: str,
    status: str,
    number: int,
    phase: str,
    previous: str | None,
    started_at: float,
    operator: str,
    machine: str,
    pid: int,
    lock_token: str,
    baseline: dict[str, Any] | None,
    migrations_applied: int | None,
    backups: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "deployment_id": deployment_id,
        "kind": "deploy",
        "release": release,
        "revision": revision,
        "status": status,
        "number": number,
        "phase": phase,
        "previous": previous,
        "started_at": started_at,
        "updated_at": time.time(),
        "operator": operator,
        "machine": machine,
        "pid": pid,
        "lock_token": lock_token,
        "baseline": baseline,
        "migrations_applied": migrations_applied,
        "backups": backups or {},
        "options": options or {},
        **extra,
    }


def own_backups(backups: dict[str, Any], host: str) -> dict[str, Any]:
    """What ``host``'s record keeps of a deployment's backups: the database dump's and its
    own code backup, not every host's (at 50 hosts that was 11 KB in every record, sent in
    every script and read back by every probe); :func:`merge_backups` puts them together."""
    own = {k: v for k, v in backups.items() if k != "hosts"}
    mine = (backups.get("hosts") or {}).get(host)
    if mine:
        own["hosts"] = {host: mine}
    return own


def merge_backups(into: dict[str, Any] | None, record: dict[str, Any]) -> dict[str, Any]:
    """The backups of a deployment as its hosts' records tell them, one record at a time:
    each host's code backup from its own record, the rest from the first that has it."""
    merged = dict(into or {})
    for key, value in record.items():
        if key == "hosts" and isinstance(value, dict):
            merged["hosts"] = {**value, **(merged.get("hosts") or {})}
        else:
            merged.setdefault(key, value)
    return merged
