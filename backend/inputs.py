"""Operator input checked at the door: ids given on the command line and free text
(reasons, descriptions, messages).

An id becomes a file name (reports), a journal key and part of shell commands, so it is
refused unless it is a plain name. Free text is stored in the journal and flag store and
shown in terminals and notifications, so it must not carry control characters: a newline
would forge a line of ``history``, an escape sequence would reach the terminal.
"""

from __future__ import annotations

import re
import unicodedata

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TEXT_LIMIT = 2000


class InputError(ValueError):
    """Operator input refused; the message names the parameter and the value."""


def is_id(value: str) -> bool:
    """A plain id: letters, digits, '.', '_', '-', starting with a letter or digit."""
    return bool(ID_PATTERN.match(value))


def check_id(value: str, what: str = "id") -> str:
    """``value`` unchanged when it is a plain id (letters, digits, ``.``, ``_``, ``-``; no
    ``..``; at most 128 characters), else :class:`InputError` naming ``what``."""
    if not ID_PATTERN.match(value) or ".." in value:
        raise InputError(
            f"{what} {value[:80]!r} is not an id (letters, digits, '.', '_', '-';"
            " starts with a letter or digit; at most 128 characters)"
        )
    return value


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") and char != "\t"


def check_text(value: str, what: str = "text", limit: int = TEXT_LIMIT) -> str:
    """``value`` unchanged when it is one line of printable text within ``limit``
    characters, else :class:`InputError` naming ``what`` (for text typed by an operator)."""
    if len(value) > limit:
        raise InputError(f"{what} is {len(value)} characters long; at most {limit} are kept")
    bad = sorted({f"U+{ord(c):04X}" for c in value if _is_control(c)})
    if bad:
        raise InputError(
            f"{what} contains control characters ({', '.join(bad[:5])}): one line of"
            " printable text, please"
        )
    return value


def printable(value: object, limit: int | None = None) -> str:
    """``value`` as text safe to show in a terminal or a one-line record: every control
    character escaped (``\\n``, ``\\x1b``...), optionally cut to ``limit`` characters.
    For text that did not come through :func:`check_text` (command output, old records)."""
    text = str(value)
    out = []
    for char in text:
        if _is_control(char):
            escaped = repr(char)[1:-1]
            out.append(escaped if escaped != char else f"\\u{ord(char):04x}")
        else:
            out.append(char)
    result = "".join(out)
    if limit is not None and len(result) > limit:
        result = result[: limit - 1] + "…"
    return result
