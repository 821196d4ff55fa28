"""The constructor options our widgets pass through to Textual's, typed so that a
misspelt or mistyped one is caught by the type check rather than at mount time."""

from __future__ import annotations

from typing import TypedDict


class WidgetOptions(TypedDict, total=False):
    """What every Textual widget's constructor takes."""

    name: str | None
    id: str | None
    classes: str | None
    disabled: bool


class FooterOptions(WidgetOptions, total=False):
    compact: bool
    show_command_palette: bool


class InputOptions(WidgetOptions, total=False):
    placeholder: str
    compact: bool
