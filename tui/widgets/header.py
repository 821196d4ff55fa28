"""The header: which deployment, what revision, who, how long, and how it is going."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from ..state import RoomState
from . import _format as fmt

#: status word -> (label, style): the label alone says it, the style only underlines it
STATUS_STYLE: dict[str, tuple[str, str]] = {
    "idle": ("IDLE", "$foreground-muted"),
    "running": ("RUNNING", "bold $background on $primary"),
    "rolling-back": ("ROLLING BACK", "bold $background on $error"),
    "succeeded": ("SUCCEEDED", "bold $background on $success"),
    "rolled-back": ("ROLLED BACK", "bold $background on $warning"),
    "rollback-failed": ("ROLLBACK FAILED", "bold $background on $error"),
    "rollback-partial": ("ROLLBACK PARTIAL", "bold $background on $error"),
    "rolled_back": ("ROLLED BACK", "bold $background on $warning"),
    "partial": ("PARTIAL", "bold $background on $error"),
    "failed": ("FAILED", "bold $background on $error"),
    "paused": ("PAUSED", "bold $background on $warning"),
}


def status_label(status: str) -> tuple[str, str]:
    return STATUS_STYLE.get(status, (status.upper().replace("_", " "), "bold reverse"))


class DeployHeader(Static):
    """Two lines: identity and clock, then the phase, the lock and the incident counts."""

    DEFAULT_CSS = """
    DeployHeader {
        height: 2;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, *, watch: bool = False, source: str = "", **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.watch_mode = watch
        self.source = source  # where a watcher's events come from: "journal" or "redis"
        self._shown: Content | None = None

    def show(self, state: RoomState, now: float) -> None:
        content = self.render_header(state, now)
        if not fmt.same(self._shown, content):
            self._shown = content
            self.update(content)

    def render_header(self, state: RoomState, now: float) -> Content:
        """Most important first: each line is cut at the right edge when the screen is narrow."""
        dep = state.deployment
        label, style = status_label(state.status)
        top: list[tuple[str, str] | str] = []
        if self.watch_mode:
            source = f" ({self.source})" if self.source else ""
            top += [(f" WATCH · READ-ONLY{source} ", "bold $background on $warning"), " "]
        top += [(f" {label} ", style), " "]
        if dep is not None:
            top += [("deploy ", "$foreground-muted"), (dep.id, "bold"), "  "]
            top += [("elapsed ", "$foreground-muted"), (fmt.elapsed(state.elapsed(now)), "bold")]
            top += ["  "]
            if dep.dry_run:
                top += [(" DRY RUN ", "bold reverse"), " "]
            if dep.revision:
                top += [("rev ", "$foreground-muted"), dep.revision[:12], "  "]
            if dep.operator:
                top += [("by ", "$foreground-muted"), dep.operator, "  "]
            if dep.release:
                top += [("release ", "$foreground-muted"), dep.release, "  "]
        else:
            top += [("no deployment yet", "$foreground-muted"), "  "]
        bottom: list[tuple[str, str] | str] = [" "]
        phase = state.current_phase
        if phase is not None:
            total = len(state.timeline)
            bottom += [("phase ", "$foreground-muted"), f"{phase.number}/{total} {phase.title}  "]
        elif dep is not None and dep.target:
            bottom += [("target ", "$foreground-muted"), dep.target, "  "]
        bottom += _counts(state)
        if state.emergency:
            bottom += [(" KILL SWITCH ON ", "bold $background on $error"), "  "]
        if state.rollback is not None:
            rb = state.rollback
            bottom += [("rollback ", "bold $error"), (rb.trigger or "manual", ""), ": "]
            bottom += [(rb.reason or "-", "italic"), "  "]
        bottom += _hosts(state)
        if state.lock:
            bottom += [("lock ", "$foreground-muted"), state.lock, "  "]
        return Content.assemble(*top, "\n", *bottom)


def _counts(state: RoomState) -> list[tuple[str, str] | str]:
    parts: list[tuple[str, str] | str] = []
    for count, label, style in (
        (state.criticals, "CRIT", "bold $error"),
        (state.errors, "ERROR", "$error"),
        (state.warnings, "WARN", "$warning"),
    ):
        if count:
            parts += [(f"{count} {label}", style), "  "]
    if not parts:
        parts = [("no incidents", "$foreground-muted"), "  "]
    return parts


def _hosts(state: RoomState) -> list[tuple[str, str] | str]:
    """``web-1 live · web-2 switching``; counts by state past four hosts."""
    if not state.hosts:
        return []
    if len(state.hosts) <= 4:
        text = " · ".join(f"{h.name} {h.state}" for h in state.hosts)
    else:
        counts: dict[str, int] = {}
        for host in state.hosts:
            counts[host.state] = counts.get(host.state, 0) + 1
        text = ", ".join(f"{n} {s}" for s, n in counts.items())
    return [("hosts ", "$foreground-muted"), text, "  "]
