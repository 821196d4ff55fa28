"""Where things live on a portal host (the Capistrano/Deployer convention), as paths.

::

    {deploy_path}/releases/{release}/   one folder per release, never changed after switch
    {deploy_path}/shared/               linked into each release
    {deploy_path}/current -> releases/X switched atomically: new link, then rename over
    {deploy_path}/.portal-ops/          lock/, releases.jsonl, repo (git mirror), backups/

The engine's :class:`backend.engine.layout.Layout` adds the commands that change a host;
this part is shared because the checks read the same places (the live release, the lock)
and must not import the engine to find them.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from .shell import q

UNFINISHED_MARKER = ".portal-ops-unfinished"


@dataclass(frozen=True)
class HostPaths:
    deploy_path: str

    @property
    def releases(self) -> str:
        return posixpath.join(self.deploy_path, "releases")

    @property
    def shared(self) -> str:
        return posixpath.join(self.deploy_path, "shared")

    @property
    def current(self) -> str:
        return posixpath.join(self.deploy_path, "current")

    @property
    def meta(self) -> str:
        return posixpath.join(self.deploy_path, ".portal-ops")

    @property
    def lock_dir(self) -> str:
        return posixpath.join(self.meta, "lock")

    @property
    def release_log(self) -> str:
        return posixpath.join(self.meta, "releases.jsonl")

    @property
    def mirror(self) -> str:
        return posixpath.join(self.meta, "repo")

    def release(self, release_id: str) -> str:
        return posixpath.join(self.releases, release_id)

    def backup_dir(self, deployment_id: str) -> str:
        return posixpath.join(self.meta, "backups", deployment_id)

    # -- the live release, read only --------------------------------------------------------

    def read_current(self, var: str) -> str:
        """Shell code leaving in ``$var`` the name of the release ``current`` points at
        (empty: no link): the shell's own ``-ef`` against each release, no process; a link
        that names none of them (dangling, or elsewhere) is read with ``readlink``."""
        if not var.isidentifier():
            raise ValueError(f"not a shell variable name: {var!r}")
        link = q(self.current)
        return (
            f'{var}=; for d in {q(self.releases)}/*/; do [ "$d" -ef {link} ] && '
            f"{{ {var}=${{d%/}}; {var}=${{{var}##*/}}; break; }}; done; "
            f'[ -n "${var}" ] || [ ! -L {link} ] || '
            f"{{ {var}=$(readlink {link}); {var}=${{{var}%/}}; {var}=${{{var}##*/}}; }}"
        )

    # -- the deploy lock, read only (taking and releasing it is the engine's) -----------------

    @property
    def lock_heartbeat(self) -> str:
        return posixpath.join(self.lock_dir, "heartbeat")

    def _lock_age(self) -> str:
        """``AGE=<seconds since the last heartbeat>``, measured by the host's own clock."""
        hb, owner = q(self.lock_heartbeat), q(self.lock_dir + "/owner.json")
        return (
            "printf 'AGE=%s\\n' \"$(( $(date +%s) - $(stat -c %Y "
            f'{hb} 2>/dev/null || stat -c %Y {owner} 2>/dev/null || date +%s) ))"; '
        )

    def lock_read(self) -> str:
        """``ABSENT``, or ``AGE=<s>`` then the owner's JSON (see :mod:`backend.lockowner`)."""
        return (
            f"if [ -d {q(self.lock_dir)} ]; then {self._lock_age()}"
            # the owner's line (one line of JSON, as written) with the shell's own read
            f"o=; {{ IFS= read -r o < {q(self.lock_dir + '/owner.json')}; }} 2>/dev/null; "
            """[ -n "$o" ] || o='{}'; printf '%s\\n' "$o"; else echo ABSENT; fi"""
        )
