"""The header: which deployment, what revision, who, how long, and how it is going."""

from __future__ import annotations

from typing import Unpack

from textual.content import Content
from textual.widgets import Static

from ..state import RoomState
from . import _format as fmt
from ._options import WidgetOptions

#: status word -> (label, style): the label alone says it, the style only underlines it
STATUS_STYLE: dict[str, tuple[str, str]] = {
    "loading": ("LOADING", "bold reverse"),
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

    def __init__(
        self,
        *,
        watch: bool = False,
        source: str = "",
        p95_limit_ms: float = 200.0,
        error_rate_limit: float = 0.01,
        **kwargs: Unpack[WidgetOptions],
    ) -> None:
        super().__init__(**kwargs)
        self.watch_mode = watch
        self.p95_limit_ms = p95_limit_ms  # a newer sample above either is shown as a breach
        self.error_rate_limit = error_rate_limit
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
        if state.loading:  # nothing is known yet: no deployment, no "idle", no counts
            return Content.assemble(*top, (state.loading, "italic"), "\n", " ")
        if dep is not None:
            top += [("deploy ", "$foreground-muted"), (dep.id, "bold"), "  "]
            top += [("elapsed ", "$foreground-muted"), (fmt.elapsed(state.elapsed(now)), "bold")]
            top += ["  "]
            if dep.dry_run:
                top += [(" DRY RUN ", "bold reverse"), " "]
            if state.rollback is not None:
                # the deployment's release is withdrawn: name what the hosts serve now
                live = state.live_release or "unknown"
                top += [("live ", "$foreground-muted"), (live, "bold"), "  "]
                if dep.release:
                    top += [("withdrawn ", "$foreground-muted"), dep.release, "  "]
                if dep.revision:
                    top += [("rev ", "$foreground-muted"), dep.revision[:12], "  "]
            else:
                if dep.revision:
                    top += [("rev ", "$foreground-muted"), dep.revision[:12], "  "]
                if dep.release:
                    top += [("release ", "$foreground-muted"), dep.release, "  "]
            if dep.operator:
                top += [("by ", "$foreground-muted"), dep.operator, "  "]
        else:
            top += [("no deployment yet", "$foreground-muted"), "  "]
        bottom: list[tuple[str, str] | str] = [" "]
        phase = state.current_phase
        if phase is not None:
            total = len(state.timeline)
            bottom += [("phase ", "$foreground-muted"), f"{phase.number}/{total} {phase.title}  "]
        elif dep is not None and dep.target:
            bottom += [("target ", "$foreground-muted"), dep.target, "  "]
        breach = self._breach(state, now)
        bottom += breach + _counts(state, quiet=not breach)
        if state.emergency:
            bottom += [(" KILL SWITCH ON ", "bold $background on $error"), "  "]
        if state.rollback is not None:
            rb = state.rollback
            bottom += [("rollback ", "bold $error"), (rb.trigger or "manual", ""), ": "]
            bottom += [(rb.reason or "-", "italic"), "  "]
        if state.lock:
            bottom += [("lock ", "$foreground-muted"), state.lock, "  "]
        return Content.assemble(*top, "\n", *bottom)

    def _breach(self, state: RoomState, now: float) -> list[tuple[str, str] | str]:
        """The newest sample over a limit, as it happens (before any rule has fired)."""
        last = state.last_sample
        if last is None:
            return []
        parts: list[tuple[str, str] | str] = []
        if last.p95 is not None and last.p95 > self.p95_limit_ms:
            text = f"p95 {fmt.ms(last.p95)} > {fmt.ms(self.p95_limit_ms)}"
            parts += [(f"▲ {text}", "bold $warning"), "  "]
        if last.error_rate is not None and last.error_rate > self.error_rate_limit:
            text = f"err {fmt.percent(last.error_rate)} > {fmt.percent(self.error_rate_limit)}"
            parts += [(f"▲ {text}", "bold $error"), "  "]
        age = now - last.ts
        if parts and age > 30:
            parts += [(f"({fmt.age(age)})", "$foreground-muted"), "  "]
        return parts


def _counts(state: RoomState, *, quiet: bool = True) -> list[tuple[str, str] | str]:
    parts: list[tuple[str, str] | str] = []
    for count, label, style in (
        (state.criticals, "CRIT", "bold $error"),
        (state.errors, "ERROR", "$error"),
        (state.warnings, "WARN", "$warning"),
    ):
        if count:
            parts += [(f"{count} {label}", style), "  "]
    if not parts and quiet:
        parts = [("no incidents", "$foreground-muted"), "  "]
    return parts
