"""The one registry of what a person can do in the control room.

Every key binding, the footer, the help screen (F1 / ?), the command palette and
docs/control-room.md come from ``ACTIONS``. Watch mode builds all of them from the
non-dangerous actions only, so a dangerous action is *absent* there (no key, no footer
entry, no palette hit); ``check_action`` refusing it is the second guard, not the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class Action:
    id: str  # stable id: the keymap key and the palette's identity
    keys: str  # Textual key names, comma separated ("R", "question_mark,f1")
    action: str  # the Textual action it runs, e.g. "deploy" or "focus_pane('log')"
    description: str  # the footer's short label
    help: str  # one sentence for the help screen and the palette
    dangerous: bool = False  # changes the portal or its flags: never in watch mode
    group: str = "View"
    show: bool = True  # in the footer (the help screen lists everything)
    key_display: str | None = None
    guard: str = ""  # how a dangerous action is confirmed, for the help screen and docs

    @property
    def name(self) -> str:
        """The method name, without parameters: ``focus_pane('log')`` -> ``focus_pane``."""
        return self.action.split("(", 1)[0]


ACTIONS: tuple[Action, ...] = (
    # -- changes the portal: dangerous, absent in watch mode --------------------------
    Action(
        "deploy",
        "d",
        "deploy",
        "Deploy",
        "Deploy the configured revision; the dry-run plan (every command, per host and"
        " phase) is shown first.",
        dangerous=True,
        guard="shows the plan; y confirms",
        group="Deployment",
    ),
    Action(
        "rollback",
        "R",
        "rollback",
        "Rollback",
        "Roll back the current (or last) deployment through the ten rollback phases.",
        dangerous=True,
        guard="type the id and a reason",
        group="Deployment",
        key_display="R",
    ),
    Action(
        "pause",
        "p",
        "pause_rollout",
        "Pause",
        "Pause or resume the gradual feature rollout (phase 8) between two steps.",
        dangerous=True,
        guard="press twice",
        group="Deployment",
        show=False,
    ),
    Action(
        "emergency",
        "E",
        "emergency_disable",
        "Kill flags",
        "Emergency-disable every feature flag (the kill switch), audited with your name.",
        dangerous=True,
        guard="a reason is required",
        group="Flags",
        key_display="E",
    ),
    Action(
        "flag-up",
        "plus,equals_sign",
        "flag_step(1)",
        "Flag +",
        "Step the selected flag's rollout up (off -> 10% -> 50% -> 100%, from [flags]"
        " rollout_steps).",
        dangerous=True,
        guard="press twice",
        group="Flags",
        key_display="+",
        show=False,
    ),
    Action(
        "flag-down",
        "minus",
        "flag_step(-1)",
        "Flag -",
        "Step the selected flag's rollout down (100% -> 50% -> 10% -> off).",
        dangerous=True,
        guard="press twice",
        group="Flags",
        key_display="-",
        show=False,
    ),
    # -- looking: safe in watch mode --------------------------------------------------
    Action(
        "pane-phases",
        "1",
        "focus_pane('timeline')",
        "Phases",
        "Focus the phase timeline.",
        show=False,
    ),
    Action("pane-hosts", "2", "focus_pane('hosts')", "Hosts", "Focus the hosts table.", show=False),
    Action(
        "pane-health", "3", "focus_pane('graphs')", "Health", "Focus the health graphs.", show=False
    ),
    Action(
        "pane-flags", "4", "focus_pane('flags')", "Flags pane", "Focus the flag table.", show=False
    ),
    Action("pane-log", "5", "focus_pane('log')", "Log", "Focus the incident log.", show=False),
    Action(
        "zoom",
        "z",
        "zoom",
        "Zoom",
        "Zoom the focused pane to the whole screen, or restore it (escape restores too).",
    ),
    Action("flags", "f", "show_flags", "Flags", "Open the flags screen: every flag in detail."),
    Action(
        "filter",
        "slash",
        "filter_log",
        "Filter",
        "Filter the incident log by text (escape clears the filter).",
        key_display="/",
    ),
    Action(
        "severity",
        "s",
        "cycle_severity",
        "Severity",
        "Show log lines from a minimum severity: all -> INFO -> WARN -> ERROR.",
        show=False,
    ),
    Action(
        "follow",
        "G",
        "follow_log",
        "Follow",
        "Jump to the newest log line and follow the tail again.",
        show=False,
        key_display="G",
    ),
    Action(
        "slower",
        "left_square_bracket",
        "graph_rate(2.0)",
        "Slower",
        "Redraw the graphs half as often (slow links).",
        show=False,
        key_display="[",
    ),
    Action(
        "faster",
        "right_square_bracket",
        "graph_rate(0.5)",
        "Faster",
        "Redraw the graphs twice as often.",
        show=False,
        key_display="]",
    ),
    Action(
        "theme",
        "t",
        "cycle_theme",
        "Theme",
        "Next theme: portal-dark, portal-light, portal-high-contrast, ansi-dark, ansi-light.",
        show=False,
    ),
    Action(
        "wrap",
        "w",
        "wrap_log",
        "Wrap",
        "Wrap long log lines onto the next rows, or cut them at the pane's edge again."
        " Enter on a log line (up/down move to it) shows it whole, with its evidence.",
        show=False,
    ),
    Action(
        "help",
        "question_mark,f1",
        "help",
        "Help",
        "Every key binding, and what it does.",
        key_display="?",
    ),
    Action(
        "quit",
        "q",
        "quit",
        "Quit",
        "Quit. While a deployment this room started runs, asks first and says what happens.",
        group="App",
    ),
)

BY_ID: dict[str, Action] = {a.id: a for a in ACTIONS}

#: action method names that are dangerous: check_action refuses them in watch mode
DANGEROUS_NAMES: frozenset[str] = frozenset(a.name for a in ACTIONS if a.dangerous)

#: key -> dangerous action: a watcher pressing one is told the room is read-only
DANGEROUS_KEYS: dict[str, Action] = {
    key.strip(): a for a in ACTIONS if a.dangerous for key in a.keys.split(",")
}


def available(watch: bool) -> tuple[Action, ...]:
    """The actions of a mode: watch mode has no dangerous ones at all."""
    return tuple(a for a in ACTIONS if not (watch and a.dangerous))


def bindings(actions: Iterable[Action]) -> list[BindingType]:
    """Textual bindings for the given actions, with ids so a keymap can remap them
    (typed as the ``BINDINGS`` class variable they fill)."""
    return [
        Binding(
            a.keys,
            a.action,
            a.description,
            show=a.show,
            id=f"portal-ops.{a.id}",
            tooltip=a.help,
            key_display=a.key_display,
        )
        for a in actions
    ]


def key_label(action: Action) -> str:
    """How the help screen and the docs name the keys: ``?  f1`` rather than key names."""
    names = {
        "question_mark": "?",
        "slash": "/",
        "plus": "+",
        "minus": "-",
        "equals_sign": "=",
        "left_square_bracket": "[",
        "right_square_bracket": "]",
    }
    return " ".join(names.get(k.strip(), k.strip()) for k in action.keys.split(","))


def markdown() -> str:
    """The bindings table of docs/control-room.md (``python -m tui.actions`` prints it)."""
    rows = [
        "| Keys | Action | What it does | In watch mode | Confirmation |",
        "|---|---|---|---|---|",
    ]
    for a in ACTIONS:
        keys = " ".join(f"`{k}`" for k in key_label(a).split())
        watch = "absent" if a.dangerous else "yes"
        rows.append(f"| {keys} | {a.description} | {a.help} | {watch} | {a.guard or '-'} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown())
