"""Strategy constraints: Unleash's operators on context fields, compiled once per flag.

Semantics follow Unleash's client specification (files 09, 11, 13, 14) and its Rust engine
as the Python client runs it: a field the context lacks makes every operator false except
``NOT_IN`` (true); ``inverted`` negates the result of a known operator; an unknown operator
is always false; ``caseInsensitive`` applies to the ``STR_*`` operators only (``IN`` stays
exact); numbers, dates and versions that do not parse make the operator false.

Each constraint compiles to a closure ``ctx -> bool`` so evaluation does no parsing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .model import Context, FlagError

SET_OPERATORS = ("IN", "NOT_IN")
STRING_OPERATORS = ("STR_CONTAINS", "STR_STARTS_WITH", "STR_ENDS_WITH")
NUMBER_OPERATORS = ("NUM_EQ", "NUM_GT", "NUM_GTE", "NUM_LT", "NUM_LTE")
DATE_OPERATORS = ("DATE_AFTER", "DATE_BEFORE")
SEMVER_OPERATORS = ("SEMVER_EQ", "SEMVER_GT", "SEMVER_GTE", "SEMVER_LT", "SEMVER_LTE")
OPERATORS = SET_OPERATORS + STRING_OPERATORS + NUMBER_OPERATORS + DATE_OPERATORS + SEMVER_OPERATORS
MULTI_VALUE = SET_OPERATORS + STRING_OPERATORS  # these read ``values``; the others ``value``

Getter = Callable[[Context], Any]
Check = Callable[[Context], bool]


@dataclass(frozen=True, slots=True)
class Constraint:
    """One Unleash constraint: ``contextName operator value(s)``, maybe inverted."""

    context_name: str
    operator: str
    values: tuple[str, ...] = ()
    value: str = ""
    case_insensitive: bool = False
    inverted: bool = False

    def to_unleash(self) -> dict[str, Any]:
        """Unleash's JSON shape (export, Redis, ``--json``)."""
        out: dict[str, Any] = {"contextName": self.context_name, "operator": self.operator}
        if self.operator in MULTI_VALUE or self.values:
            out["values"] = list(self.values)
        if self.operator not in MULTI_VALUE or self.value:
            out["value"] = self.value
        out["caseInsensitive"] = self.case_insensitive
        out["inverted"] = self.inverted
        return out

    @classmethod
    def from_unleash(cls, raw: Mapping[str, Any], where: str = "constraint") -> Constraint:
        """Parse and check one constraint; bad input raises :class:`FlagError`."""
        if not isinstance(raw, Mapping):
            raise FlagError(f"{where}: a constraint must be an object")
        name = raw.get("contextName")
        if not isinstance(name, str) or not name or "\n" in name:
            raise FlagError(f"{where}: contextName must be a non-empty string")
        op = raw.get("operator")
        if not isinstance(op, str) or op not in OPERATORS:
            raise FlagError(
                f"{where}: unsupported operator {op!r} (supported: {', '.join(OPERATORS)})"
            )
        values = raw.get("values") or []
        if not isinstance(values, list) or not all(
            isinstance(v, str | int | float) for v in values
        ):
            raise FlagError(f"{where}: values must be a list of strings")
        value = raw.get("value")
        if value is not None and not isinstance(value, str | int | float):
            raise FlagError(f"{where}: value must be a string")
        return cls(
            context_name=name,
            operator=op,
            values=tuple(str(v) for v in values),
            value="" if value is None else str(value),
            case_insensitive=bool(raw.get("caseInsensitive", False)),
            inverted=bool(raw.get("inverted", False)),
        )

    def describe(self) -> str:
        """``country IN [fr, de]``, ``not plan STR_STARTS_WITH [pro] (any case)``."""
        shown = "[" + ", ".join(self.values) + "]" if self.operator in MULTI_VALUE else self.value
        text = f"{self.context_name} {self.operator} {shown}"
        if self.case_insensitive and self.operator in STRING_OPERATORS:
            text += " (any case)"
        return f"not {text}" if self.inverted else text


# -- context fields -------------------------------------------------------------------------

# Unleash's field names and portal-ops' own name the same attributes of a Context
_ATTRIBUTES = {
    "userId": "user",
    "user": "user",
    "sessionId": "session",
    "session": "session",
    "environment": "environment",
    "appName": "app_name",
    "remoteAddress": "remote_address",
}
_COMPANY = ("company", "companyId")


def getter(name: str) -> Getter:
    """A function returning the context's value for the field ``name`` (None: absent)."""
    attr = _ATTRIBUTES.get(name)
    if attr is not None:
        return lambda ctx: getattr(ctx, attr)
    if name in _COMPANY:

        def company(ctx: Context) -> Any:
            if ctx.company is not None:
                return ctx.company
            return ctx.properties.get(name)

        return company
    if name == "currentTime":
        return _current_time
    return lambda ctx: ctx.properties.get(name)


def _current_time(ctx: Context) -> Any:
    return ctx.current_time if ctx.current_time is not None else _Now


class _Now:
    """Marks "the evaluation time": read the clock only when a date operator needs it."""


# -- parsing of numbers, dates, versions ---------------------------------------------------


_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _number(value: Any) -> float | None:
    """A context value as a number: plain decimal notation only (no spaces, no ``1_000``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    return float(text) if _NUMBER.fullmatch(text) else None


def _date(value: Any) -> float | None:
    """RFC 3339 with a zone (``Z`` or ``+02:00``) as a unix time; None otherwise."""
    if value is _Now:
        return time.time()
    if isinstance(value, datetime):
        return value.timestamp() if value.tzinfo else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        parsed = datetime.fromisoformat(str(value).strip())
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo else None


_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)


def semver_key(value: Any) -> tuple[Any, ...] | None:
    """A sort key with Semantic Versioning 2.0 precedence; None if not a strict version.

    A pre-release sorts before its release; identifiers compare numerically when numeric,
    numbers before words; build metadata is ignored. ``v1.2.3`` is not a version.
    """
    m = _SEMVER.fullmatch(str(value).strip()) if value is not None else None
    if m is None:
        return None
    major, minor, patch, pre = int(m[1]), int(m[2]), int(m[3]), m[4]
    if pre is None:
        return (major, minor, patch, 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (major, minor, patch, 0, ids)


def _semver(value: Any) -> tuple[Any, ...] | None:
    return semver_key(value)


# -- compilation ----------------------------------------------------------------------------


def compile_constraint(c: Constraint) -> Check:
    """A closure ``ctx -> bool`` for ``c`` (all parsing of the constraint done here)."""
    fast = _fast_membership(c)
    if fast is not None:
        return fast
    get = getter(c.context_name)
    test = _operator(c)
    if test is None:
        return lambda ctx: False  # unknown operator: false, inverted or not
    missing = c.operator == "NOT_IN"
    if c.inverted:

        def inverted(ctx: Context) -> bool:
            v = get(ctx)
            return not (missing if v is None else test(v))

        return inverted

    def plain(ctx: Context) -> bool:
        v = get(ctx)
        return missing if v is None else test(v)

    return plain


def _fast_membership(c: Constraint) -> Check | None:
    """IN / NOT_IN on a property, the most common targeting: one dict lookup and one set
    lookup (an absent property, None, is in no set: IN false, NOT_IN true, as required)."""
    if c.operator not in SET_OPERATORS or c.context_name in _ATTRIBUTES:
        return None
    if c.context_name in _COMPANY or c.context_name == "currentTime":
        return None
    name, members = c.context_name, frozenset(c.values)
    is_in, inverted = c.operator == "IN", c.inverted
    if is_in and not inverted:
        return lambda ctx: (
            (v := ctx.properties.get(name)) in members
            or (v is not None and v.__class__ is not str and _text(v) in members)
        )

    def member(ctx: Context) -> bool:
        v = ctx.properties.get(name)
        if v is None:
            result = not is_in  # absent: IN false, NOT_IN true
        else:
            if v.__class__ is not str:
                v = _text(v)
            result = (v in members) == is_in
        return result != inverted

    return member


def _operator(c: Constraint) -> Callable[[Any], bool] | None:
    op = c.operator
    if op in SET_OPERATORS:
        members = frozenset(c.values)
        if op == "IN":
            return lambda v: (v if isinstance(v, str) else _text(v)) in members
        return lambda v: (v if isinstance(v, str) else _text(v)) not in members
    if op in STRING_OPERATORS:
        return _string_operator(op, c.values, c.case_insensitive)
    if op in NUMBER_OPERATORS:
        limit = _number(c.value.strip())
        if limit is None:
            return lambda v: False
        return _compare(op[4:], limit, _number)
    if op in DATE_OPERATORS:
        limit = _date(c.value)
        if limit is None:
            return lambda v: False
        return _compare("GT" if op == "DATE_AFTER" else "LT", limit, _date)
    if op in SEMVER_OPERATORS:
        key = semver_key(c.value)
        if key is None:
            return lambda v: False
        return _compare(op[7:], key, _semver)
    return None


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _string_operator(op: str, values: Sequence[str], fold: bool) -> Callable[[Any], bool]:
    needles = tuple(v.lower() for v in values) if fold else tuple(values)

    def prepare(v: Any) -> str:
        text = v if isinstance(v, str) else _text(v)
        return text.lower() if fold else text

    if op == "STR_CONTAINS":
        return lambda v: any(n in prepare(v) for n in needles)
    if op == "STR_STARTS_WITH":
        return lambda v: prepare(v).startswith(needles)
    return lambda v: prepare(v).endswith(needles)


def _compare(kind: str, limit: Any, parse: Callable[[Any], Any]) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        x = parse(v)
        if x is None:
            return False
        if kind == "EQ":
            return bool(x == limit)
        if kind == "GT":
            return bool(x > limit)
        if kind == "GTE":
            return bool(x >= limit)
        if kind == "LT":
            return bool(x < limit)
        return bool(x <= limit)

    return check


def all_of(checks: Sequence[Check]) -> Check | None:
    """One closure for a strategy's constraints (AND); None when there are none."""
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return lambda ctx: a(ctx) and b(ctx)
    frozen = tuple(checks)
    return lambda ctx: all(check(ctx) for check in frozen)


def now_utc() -> datetime:
    return datetime.now(UTC)
