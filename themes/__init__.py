"""Colour themes and the layout stylesheet of the control room.

The layout (``control_room.tcss``) uses theme variables only, never a colour literal, so
every theme here and every Textual theme (``ansi-dark`` and ``ansi-light`` for 16-colour
terminals included) draws the whole room. The app derives its own variables (severities,
graph lines) from the base ones unless a theme sets them; see ``DERIVED_VARIABLES``.
"""

from __future__ import annotations

from pathlib import Path

from textual.theme import Theme

STYLESHEET = Path(__file__).with_name("control_room.tcss")

DEFAULT_THEME = "portal-dark"

PORTAL_DARK = Theme(
    name="portal-dark",
    primary="#5FA8FF",
    secondary="#8EC8D8",
    accent="#F0A868",
    foreground="#D8DEE9",
    background="#0E1318",
    surface="#141B22",
    panel="#1C2630",
    success="#7CCF7C",
    warning="#F2C14E",
    error="#FF6B6B",
    dark=True,
    variables={
        "graph-p50": "#8EC8D8",
        "graph-p95": "#5FA8FF",
        "graph-p99": "#C59CF2",
        "graph-rps": "#7CCF7C",
    },
)

PORTAL_LIGHT = Theme(
    name="portal-light",
    primary="#0B62D6",
    secondary="#3D6E80",
    accent="#B35900",
    foreground="#1F2328",
    background="#F6F8FA",
    surface="#FFFFFF",
    panel="#E6EBF0",
    success="#1A7F37",
    warning="#9A6700",
    error="#CF222E",
    dark=False,
    variables={
        "graph-p50": "#3D6E80",
        "graph-p95": "#0B62D6",
        "graph-p99": "#7A3FC4",
        "graph-rps": "#1A7F37",
    },
)

PORTAL_HIGH_CONTRAST = Theme(
    name="portal-high-contrast",
    primary="#00FFFF",
    secondary="#FFFFFF",
    accent="#FFFF00",
    foreground="#FFFFFF",
    background="#000000",
    surface="#000000",
    panel="#202020",
    success="#00FF00",
    warning="#FFFF00",
    error="#FF4040",
    dark=True,
    variables={
        "graph-p50": "#FFFFFF",
        "graph-p95": "#00FFFF",
        "graph-p99": "#FF00FF",
        "graph-rps": "#00FF00",
        "border": "#FFFFFF",
        "border-blurred": "#A0A0A0",
    },
)

THEMES: tuple[Theme, ...] = (PORTAL_DARK, PORTAL_LIGHT, PORTAL_HIGH_CONTRAST)

#: the order the theme key cycles through: ours, then Textual's 16-colour themes
CYCLE: tuple[str, ...] = (
    "portal-dark",
    "portal-light",
    "portal-high-contrast",
    "ansi-dark",
    "ansi-light",
)

#: app variables and the base variable each falls back to when a theme does not set it
DERIVED_VARIABLES: dict[str, str] = {
    "sev-debug": "foreground-darken-1",
    "sev-info": "foreground",
    "sev-ok": "success",
    "sev-warning": "warning",
    "sev-error": "error",
    "sev-critical": "error",
    "graph-p50": "secondary",
    "graph-p95": "primary",
    "graph-p99": "accent",
    "graph-rps": "success",
    "graph-errors": "error",
    "graph-target": "warning",
    "graph-acceptable": "error",
}


def derive_variables(variables: dict[str, str]) -> dict[str, str]:
    """The app's variables a theme left out, taken from the theme's own colours."""
    derived = {
        name: variables[base]
        for name, base in DERIVED_VARIABLES.items()
        if name not in variables and base in variables
    }
    return {**derived, **variables}
