"""The names and titles of the nine deploy phases and the ten rollback phases.

A module of its own, with no imports, so the control room and any other front can name
the phases without importing the engine.
"""

from __future__ import annotations

DEPLOY_PHASES: tuple[tuple[str, str], ...] = (
    ("validate-pre", "Pre-deployment validation"),
    ("backup", "Backup"),
    ("flags-prepare", "Feature flag preparation"),
    ("code", "Code deployment"),
    ("database", "Database updates"),
    ("switch", "Switch and restart"),
    ("validate-post", "Post-deployment validation"),
    ("rollout", "Gradual feature rollout"),
    ("finalize", "Finalization"),
)

ROLLBACK_PHASES: tuple[tuple[str, str], ...] = (
    ("rb-declare", "Declare the incident, take the lock"),
    ("rb-flags", "Emergency-disable flags"),
    ("rb-maintenance-on", "Maintenance on"),
    ("rb-switch", "Switch current to the previous release"),
    ("rb-database", "Database back"),
    ("rb-assets", "Assets and caches"),
    ("rb-restart", "Restart services"),
    ("rb-maintenance-off", "Maintenance off"),
    ("rb-verify", "Verify health"),
    ("rb-report", "Report, notify, release the lock"),
)
