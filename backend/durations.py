"""The one duration parser: every duration in the config and on the command line.

``90`` and ``"90"`` are seconds; ``"90s"``, ``"5m"``, ``"1h30m"``, ``"1.5h"``, ``"250ms"``
combine units from the largest down. A bad value is refused naming the key or option that
held it, so the CLI can exit 2 saying which one.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from .schema import Convert

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")


class DurationError(ValueError):
    """A value that is not a duration; ``key`` names where it came from."""

    def __init__(self, key: str, value: Any) -> None:
        self.key = key
        self.value = value
        super().__init__(
            f"{key}: bad duration {value!r}: use seconds (90) or units such as 90s, 5m, 1h30m,"
            " 250ms"
        )


def parse_duration(value: Any, key: str = "duration") -> float:
    """Seconds in ``value`` (a number, or text like ``"1h30m"``); never negative."""
    if isinstance(value, bool):
        raise DurationError(key, value)
    if isinstance(value, int | float):
        if value < 0 or value != value:  # negative or NaN
            raise DurationError(key, value)
        return float(value)
    if not isinstance(value, str):
        raise DurationError(key, value)
    text = value.strip().lower().replace(" ", "")
    if _NUMBER.match(text):
        return float(text)
    total, pos, last = 0.0, 0, None
    order = list(_UNITS)
    for match in _PART.finditer(text):
        unit = match.group(2)
        if match.start() != pos or (last is not None and order.index(unit) <= order.index(last)):
            raise DurationError(key, value)  # gaps, repeats or units out of order: "5m1h"
        total += float(match.group(1)) * _UNITS[unit]
        pos, last = match.end(), unit
    if not text or pos != len(text):
        raise DurationError(key, value)
    return total


def _config_duration(value: Any) -> Any:
    """In a config section: text becomes seconds; the field's own bounds still apply."""
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except DurationError:
            raise ValueError(
                f"bad duration {value!r}: use seconds (90) or units such as 90s, 5m, 1h30m"
            ) from None
    return value


# A config field that takes 90, "90s", "5m" or "1h30m" and holds seconds as a float.
Duration = Annotated[float, Convert(_config_duration)]
