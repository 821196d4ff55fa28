"""The data of feature flags: definitions, evaluation contexts, results, input rules.

Kept free of I/O so the store, the Redis publication, the app-side client and the CLI all
share one shape, and the PHP portal can read the same JSON (see ``Flag.to_json``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeGuard

# Unleash's server accepts a name that ``encodeURIComponent`` leaves unchanged; its clients
# also serve UTF-8 names (client specification 18), so non-ASCII letters, digits and
# symbols are accepted too. Never a quote, backslash, colon, slash, space or control
# character: names travel in Redis keys, JSON built by a Lua script, and shell commands.
NAME_MAX = 100
_URL_FRIENDLY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()")
_UNICODE_OK = ("L", "N", "S", "M")  # letters, numbers, symbols (emoji), combining marks
NAME_RULE = (
    "1 to 100 characters: letters, digits, '-', '_', '.', '!', '~', '*', \"'\", '(', ')'"
    " or non-ASCII letters and symbols; not '.' or '..'"
)
# stickiness names a context field: company, user, session, or any property name
_STICKINESS = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
OVERRIDE_KINDS = ("company", "user")
BUILTIN_FIELDS = ("company", "user", "session")
_FIELD_ATTRIBUTES = {
    "company": "company",
    "companyId": "company",
    "user": "user",
    "userId": "user",
    "session": "session",
    "sessionId": "session",
    "environment": "environment",
    "appName": "app_name",
    "remoteAddress": "remote_address",
}


class FlagError(ValueError):
    """Bad input (name, percentage, unknown flag): the CLI prints it and exits 2."""


class UnknownFlagError(FlagError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown flag {name!r} (see `portal-ops feature list`)")
        self.name = name


def is_valid_name(name: object) -> TypeGuard[str]:
    """Unleash's rule, with UTF-8: the exact string is kept (the hash is case-sensitive)."""
    if not isinstance(name, str) or not 0 < len(name) <= NAME_MAX or name in (".", ".."):
        return False
    for ch in name:
        if ch in _URL_FRIENDLY:
            continue
        if ord(ch) < 128 or unicodedata.category(ch)[0] not in _UNICODE_OK:
            return False
    return True


def validate_name(name: object) -> str:
    """A flag name as Unleash accepts it; refused otherwise, never folded or rewritten."""
    if not is_valid_name(name):
        raise FlagError(f"bad flag name {name!r}: {NAME_RULE}")
    return name


def validate_group(group: str) -> str:
    """An Unleash ``groupId``: free text (case kept), but one printable line."""
    if (
        not isinstance(group, str)
        or not 0 < len(group) <= 256
        or any(unicodedata.category(ch)[0] == "C" for ch in group)
    ):
        raise FlagError(
            f"bad group {group!r}: 1 to 256 printable characters on one line are expected"
        )
    return group


def validate_percentage(value: Any) -> int:
    """Integers 0..100 only: "50%" or 12.5 are refused rather than guessed at."""
    if isinstance(value, bool):
        raise FlagError(f"bad percentage {value!r}: an integer from 0 to 100 is expected")
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[0-9]{1,3}", text):
            raise FlagError(f"bad percentage {value!r}: an integer from 0 to 100 is expected")
        value = int(text)
    if not isinstance(value, int) or not 0 <= value <= 100:
        raise FlagError(f"bad percentage {value!r}: an integer from 0 to 100 is expected")
    return value


def validate_stickiness(value: str) -> str:
    if not isinstance(value, str) or not _STICKINESS.fullmatch(value):
        raise FlagError(
            f"bad stickiness {value!r}: name a context field (company, user, session)"
            " or a property name"
        )
    return value


def validate_id(kind: str, value: str) -> str:
    """Company and user ids are opaque strings, but never empty or multi-line."""
    if not isinstance(value, str) or not value.strip() or len(value) > 256 or "\n" in value:
        raise FlagError(f"bad {kind} id {value!r}: a non-empty single-line string is expected")
    return value.strip()


UNSET = -1  # Flag.percentage not given: taken from the strategies (100 for a new flag)


@dataclass(frozen=True, slots=True, eq=True)
class Flag:
    """One flag's definition. Treat the override dicts as read-only: flags are shared.

    ``strategies`` is Unleash's model (any strategy on turns the flag on). Left None, the
    flag has one ``flexibleRollout`` strategy built from ``percentage``, ``stickiness`` and
    ``group``: the simple flag `feature create` makes. Given, ``percentage``, ``stickiness``
    and ``group`` describe its first ``flexibleRollout`` strategy (the one `enable
    --percentage` and the gradual rollout move); setting ``percentage`` (``replace``)
    rewrites that strategy's rollout.
    """

    name: str
    description: str = ""
    enabled: bool = False
    percentage: int = UNSET
    stickiness: str = "company"
    group: str = ""  # empty: the flag name (as Unleash's groupId defaults to the toggle name)
    company_overrides: Mapping[str, bool] = field(default_factory=dict)
    user_overrides: Mapping[str, bool] = field(default_factory=dict)
    version: int = 0
    updated_at: float = 0.0
    strategies: tuple[Any, ...] | None = None  # tuple[Strategy, ...]
    # derived once, so evaluation does no string work besides the hash input
    prefix: str = field(default="", compare=False, repr=False)
    decide: Any = field(default=None, compare=False, repr=False)  # set by evaluate.compile

    def __post_init__(self) -> None:
        from .strategies import Strategy

        strategies = self.strategies
        if strategies is None:
            pct = 100 if self.percentage == UNSET else self.percentage
            strategies = (Strategy.rollout(pct, self.stickiness, self.group),)
        else:
            strategies = tuple(strategies)
            primary = _primary(strategies)
            if primary is not None:
                main = strategies[primary]
                if self.percentage != UNSET and self.percentage != main.percentage:
                    main = main.with_percentage(self.percentage)
                    strategies = (*strategies[:primary], main, *strategies[primary + 1 :])
                group = main.parameters.get("groupId") or ""
                object.__setattr__(self, "stickiness", main.stickiness)
                object.__setattr__(self, "group", "" if group == self.name else group)
            elif self.percentage not in (UNSET, 100):
                raise FlagError(
                    f"flag {self.name!r} has no flexibleRollout strategy to set a percentage"
                    " on (see `portal-ops feature show`)"
                )
        primary = _primary(strategies)
        pct = strategies[primary].percentage if primary is not None else 100
        object.__setattr__(self, "strategies", strategies)
        object.__setattr__(self, "percentage", pct)
        object.__setattr__(self, "prefix", f"{self.group or self.name}:")
        object.__setattr__(self, "decide", None)

    @property
    def bucket_group(self) -> str:
        return self.group or self.name

    @property
    def overrides_count(self) -> int:
        return len(self.company_overrides) + len(self.user_overrides)

    @property
    def is_simple(self) -> bool:
        """One unconstrained flexibleRollout: what `feature create` makes."""
        s = self.strategies
        return bool(
            s and len(s) == 1 and s[0].is_rollout and not s[0].constraints and not s[0].segments
        )

    def to_json(self) -> dict[str, Any]:
        """The published shape (Redis hash value, pub/sub message, ``--json``)."""
        return {
            "name": self.name,
            "description": self.description,
            "enabled": self.enabled,
            "percentage": self.percentage,
            "stickiness": self.stickiness,
            "group": self.bucket_group,
            "strategies": [s.to_json() for s in self.strategies or ()],
            "overrides": {
                "company": dict(sorted(self.company_overrides.items())),
                "user": dict(sorted(self.user_overrides.items())),
            },
            "version": self.version,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Flag:
        from .strategies import Strategy

        overrides = raw.get("overrides") or {}
        name = str(raw["name"])
        group = str(raw.get("group") or "")
        strategies = raw.get("strategies")
        return cls(
            name=name,
            description=str(raw.get("description") or ""),
            enabled=bool(raw.get("enabled")),
            percentage=UNSET if strategies is not None else int(raw.get("percentage", 100)),
            stickiness=str(raw.get("stickiness") or "company"),
            group="" if group == name else group,
            company_overrides={
                str(k): bool(v) for k, v in (overrides.get("company") or {}).items()
            },
            user_overrides={str(k): bool(v) for k, v in (overrides.get("user") or {}).items()},
            version=int(raw.get("version") or 0),
            updated_at=float(raw.get("updated_at") or 0.0),
            strategies=None
            if strategies is None
            else tuple(
                Strategy.from_json(s, f"flag {name!r}, strategy {i + 1}")
                for i, s in enumerate(strategies)
            ),
        )


def _primary(strategies: tuple[Any, ...]) -> int | None:
    """Index of the first flexibleRollout strategy (the one percentages move)."""
    for i, s in enumerate(strategies):
        if s.is_rollout:
            return i
    return None


class Context:
    """Who is asking: the company (tenant), the user, the session, and free properties.

    A plain slotted class (not a dataclass) because apps build one per request and the
    evaluation hot path reads its attributes millions of times a second.
    """

    __slots__ = (
        "app_name",
        "company",
        "current_time",
        "environment",
        "properties",
        "remote_address",
        "session",
        "user",
    )

    def __init__(
        self,
        company: str | int | None = None,
        user: str | int | None = None,
        session: str | None = None,
        properties: Mapping[str, Any] | None = None,
        *,
        environment: str | None = None,
        app_name: str | None = None,
        remote_address: str | None = None,
        current_time: Any = None,
    ) -> None:
        self.company = None if company is None or company == "" else str(company)
        self.user = None if user is None or user == "" else str(user)
        self.session = None if session is None or session == "" else str(session)
        self.properties: Mapping[str, Any] = properties or {}
        # Unleash's other standard fields (constraints on environment, appName, ...);
        # current_time None means "now" for the date operators
        self.environment = environment
        self.app_name = app_name
        self.remote_address = remote_address
        self.current_time = current_time

    def get(self, name: str) -> str | None:
        """The value a stickiness names: a built-in field (portal-ops' or Unleash's name,
        ``user``/``userId``, ``company``/``companyId``...), else a property."""
        attr = _FIELD_ATTRIBUTES.get(name)
        if attr is not None:
            value = getattr(self, attr)
            if value is not None or attr != "company":
                return value
        value = self.properties.get(name)
        return None if value is None or value == "" else str(value)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "company": self.company,
            "user": self.user,
            "session": self.session,
            "properties": dict(self.properties),
        }
        for key in ("environment", "app_name", "remote_address", "current_time"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value if isinstance(value, str | int | float) else str(value)
        return out

    def __repr__(self) -> str:
        return f"Context({self.to_dict()!r})"


EMPTY_CONTEXT = Context()


class Reason:
    """Evaluation reasons, named as OpenFeature names them."""

    STATIC = "STATIC"  # on for everyone (100 %) or for nobody (0 %): no per-caller decision
    TARGETING_MATCH = "TARGETING_MATCH"  # a company or user override decided
    SPLIT = "SPLIT"  # the percentage bucketing decided
    DISABLED = "DISABLED"  # the flag is off, or the emergency disable is active
    DEFAULT = "DEFAULT"  # nothing to bucket on (stickiness field missing): the default
    STALE = "STALE"  # app side: last known value while the source is unreachable
    ERROR = "ERROR"  # unknown flag, not loaded yet, or an unexpected failure: the default


class Rule:
    """Which rule decided, in evaluation order."""

    EMERGENCY = "emergency-disable"
    OFF = "flag-off"
    USER_OVERRIDE = "user-override"
    COMPANY_OVERRIDE = "company-override"
    EVERYONE = "percentage-100"
    NOBODY = "percentage-0"
    PERCENTAGE = "percentage"
    NO_STICKINESS = "stickiness-missing"
    CONSTRAINT = "constraint-failed"  # a constraint or segment of the strategy did not hold
    STRATEGY = "strategy"  # a strategy other than a rollout decided (default, userWithId...)
    NO_STRATEGIES = "no-strategies"  # enabled with no strategy: on for everyone (Unleash)
    NO_MATCH = "no-strategy-matched"  # several strategies, none on
    UNKNOWN_FLAG = "unknown-flag"
    NOT_READY = "not-ready"
    ERROR = "error"


class Resolution(NamedTuple):
    """What a caller gets and why. ``bucket`` is set when the percentage decided;
    ``strategy`` is the index (from 0) of the strategy that decided, if one did."""

    value: bool
    reason: str
    rule: str
    bucket: int | None = None
    error_code: str | None = None  # OpenFeature error code: FLAG_NOT_FOUND, GENERAL, ...
    strategy: int | None = None

    @property
    def variant(self) -> str:
        return "on" if self.value else "off"

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "variant": self.variant,
            "reason": self.reason,
            "rule": self.rule,
            "bucket": self.bucket,
            "error_code": self.error_code,
            "strategy": self.strategy,
        }


@dataclass(frozen=True)
class Emergency:
    """The kill switch's state: every flag off while ``active``; configuration untouched."""

    active: bool = False
    reason: str = ""
    since: float = 0.0
    by: str = ""
    deployment_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "reason": self.reason,
            "since": self.since,
            "by": self.by,
            "deployment_id": self.deployment_id,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> Emergency:
        if not raw:
            return cls()
        return cls(
            active=bool(raw.get("active")),
            reason=str(raw.get("reason") or ""),
            since=float(raw.get("since") or 0.0),
            by=str(raw.get("by") or ""),
            deployment_id=raw.get("deployment_id"),
        )
