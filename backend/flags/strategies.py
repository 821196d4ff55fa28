"""Activation strategies: Unleash's model of who gets an enabled flag.

A flag holds several strategies; any strategy that is on turns the flag on (OR). A
strategy is on when all its constraints and all its segments' constraints hold (AND) and
then its own rule says so:

==========================  ===============================================================
``default``                  everyone who passes the constraints
``flexibleRollout``          ``rollout`` % by ``stickiness`` (``default``: userId, then
                             sessionId, then random; ``random``; or any context field) in
                             ``groupId`` (the flag name when empty)
``userWithId``               the users in ``userIds`` (comma-separated)
``gradualRolloutUserId``     ``percentage`` % of users by userId in ``groupId``
``gradualRolloutSessionId``  ``percentage`` % of sessions by sessionId in ``groupId``
``gradualRolloutRandom``     ``percentage`` % at random on each evaluation
``remoteAddress``            the addresses or networks in ``IPs`` (comma-separated)
``applicationHostname``      the machines in ``hostNames`` (this host's name)
==========================  ===============================================================

A strategy Unleash does not define (a team's custom strategy) is never on, as in an
Unleash client that has not registered it; `feature import` refuses such flags.
"""

from __future__ import annotations

import ipaddress
import os
import random
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .constraints import Constraint
from .model import FlagError, validate_percentage

KNOWN = (
    "default",
    "flexibleRollout",
    "userWithId",
    "gradualRolloutUserId",
    "gradualRolloutSessionId",
    "gradualRolloutRandom",
    "remoteAddress",
    "applicationHostname",
)
ROLLOUT = "flexibleRollout"
# the stickiness Unleash calls "default": userId, then sessionId, then a random number
DEFAULT_STICKINESS = "default"
RANDOM_STICKINESS = "random"
_PERCENT_PARAM = {
    "flexibleRollout": "rollout",
    "gradualRolloutUserId": "percentage",
    "gradualRolloutSessionId": "percentage",
    "gradualRolloutRandom": "percentage",
}


@dataclass(frozen=True, slots=True)
class Segment:
    """A named, shared set of constraints. ``constraints`` None: referenced but undefined
    (Unleash then never turns the strategy on)."""

    id: int
    name: str = ""
    constraints: tuple[Constraint, ...] | None = ()

    def to_unleash(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name or f"segment-{self.id}",
            "constraints": [c.to_unleash() for c in self.constraints or ()],
        }


@dataclass(frozen=True, slots=True)
class Strategy:
    """One activation strategy with its parameters, constraints and segments."""

    name: str = ROLLOUT
    parameters: Mapping[str, str] = field(default_factory=dict)
    constraints: tuple[Constraint, ...] = ()
    segments: tuple[Segment, ...] = ()
    disabled: bool = False  # kept but ignored, as Unleash does
    title: str = ""

    @classmethod
    def rollout(cls, percentage: int, stickiness: str = "company", group: str = "") -> Strategy:
        return cls(
            ROLLOUT,
            {"rollout": str(percentage), "stickiness": stickiness, "groupId": group},
        )

    @property
    def is_rollout(self) -> bool:
        return self.name == ROLLOUT

    @property
    def percentage(self) -> int | None:
        """The rollout percentage of a percentage strategy (None for the others)."""
        key = _PERCENT_PARAM.get(self.name)
        if key is None:
            return None
        return parse_percentage(self.parameters.get(key, "100" if self.is_rollout else "0"))

    @property
    def stickiness(self) -> str:
        if self.name == "gradualRolloutUserId":
            return "userId"
        if self.name == "gradualRolloutSessionId":
            return "sessionId"
        if self.name == "gradualRolloutRandom":
            return RANDOM_STICKINESS
        return self.parameters.get("stickiness") or DEFAULT_STICKINESS

    def group_id(self, flag_name: str) -> str:
        return self.parameters.get("groupId") or flag_name

    def with_percentage(self, percentage: int) -> Strategy:
        key = _PERCENT_PARAM.get(self.name)
        if key is None:
            raise FlagError(f"strategy {self.name!r} has no percentage")
        return Strategy(
            self.name,
            {**self.parameters, key: str(percentage)},
            self.constraints,
            self.segments,
            self.disabled,
            self.title,
        )

    def to_json(self) -> dict[str, Any]:
        """portal-ops' own shape (published in Redis); segments travel inline."""
        out: dict[str, Any] = {
            "name": self.name,
            "parameters": dict(self.parameters),
            "constraints": [c.to_unleash() for c in self.constraints],
        }
        if self.segments:
            out["segments"] = [
                s.to_unleash() | {"missing": s.constraints is None} for s in self.segments
            ]
        if self.disabled:
            out["disabled"] = True
        if self.title:
            out["title"] = self.title
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], where: str = "strategy") -> Strategy:
        segments = []
        for s in raw.get("segments") or []:
            constraints = None
            if not s.get("missing"):
                constraints = tuple(
                    Constraint.from_unleash(c, where) for c in s.get("constraints") or []
                )
            segments.append(Segment(int(s["id"]), str(s.get("name") or ""), constraints))
        return cls.parse(raw, where, segments)

    @classmethod
    def parse(
        cls, raw: Mapping[str, Any], where: str, segments: list[Segment] | tuple[Segment, ...]
    ) -> Strategy:
        """One strategy from Unleash's JSON, its segments already resolved; checked."""
        if not isinstance(raw, Mapping):
            raise FlagError(f"{where}: a strategy must be an object")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise FlagError(f"{where}: the strategy has no name")
        params = raw.get("parameters") or {}
        if not isinstance(params, Mapping):
            raise FlagError(f"{where}: parameters must be an object")
        parameters = {str(k): _param(v) for k, v in params.items()}
        key = _PERCENT_PARAM.get(name)
        if key is not None and key in parameters:
            parse_percentage(parameters[key], f"{where}: {key}")
        constraints = raw.get("constraints") or []
        if not isinstance(constraints, list):
            raise FlagError(f"{where}: constraints must be a list")
        return cls(
            name=name,
            parameters=parameters,
            constraints=tuple(
                Constraint.from_unleash(c, f"{where}, constraint {i + 1}")
                for i, c in enumerate(constraints)
            ),
            segments=tuple(segments),
            disabled=bool(raw.get("disabled", False)),
            title=str(raw.get("title") or ""),
        )

    def describe(self, flag_name: str = "") -> str:
        """``flexibleRollout 50% by userId``, ``userWithId 3 users``, for humans."""
        pct = self.percentage
        if self.is_rollout:
            text = f"{pct}% by {self.stickiness}"
            group = self.parameters.get("groupId")
            if group and group != flag_name:
                text += f" in group {group}"
        elif self.name == "default":
            text = "everyone"
        elif self.name == "userWithId":
            text = f"users {self.parameters.get('userIds', '')}"
        elif pct is not None:
            text = f"{self.name} {pct}%"
        elif self.name == "remoteAddress":
            text = f"addresses {self.parameters.get('IPs', '')}"
        elif self.name == "applicationHostname":
            text = f"hosts {self.parameters.get('hostNames', '')}"
        else:
            text = f"{self.name} (unknown strategy: never on)"
        if self.disabled:
            text += " [disabled]"
        return text


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise FlagError(f"strategy parameter {value!r}: a string or number is expected")


def parse_percentage(value: Any, where: str = "percentage") -> int:
    try:
        return validate_percentage(value)
    except FlagError:
        raise FlagError(f"{where}: {value!r} is not an integer from 0 to 100") from None


def csv(value: str) -> frozenset[str]:
    """Unleash's comma-separated lists: items stripped, empty ones dropped."""
    return frozenset(p.strip() for p in value.split(",") if p.strip())


def networks(value: str) -> tuple[Any, ...]:
    """``IPs`` of remoteAddress: addresses and CIDR networks; unparsable items ignored."""
    out = []
    for item in csv(value):
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue  # an entry that is no address never matches (as in Unleash)
    return tuple(out)


def address_in(address: str | None, nets: tuple[Any, ...]) -> bool:
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in n for n in nets)


def this_hostname() -> str:
    return (os.environ.get("HOSTNAME") or socket.gethostname()).lower()


def random_bucket() -> int:
    """1..100 for random stickiness (the same distribution as the hash)."""
    return random.randint(1, 100)
