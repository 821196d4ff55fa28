"""FlagService: the one API the CLI, the deploy engine and the control room change flags with.

Each change is validated first (bad input changes nothing), committed to the store with
its audit entry, published to Redis when one is configured, and emitted as a
``flag.changed`` event on the bus so the journal and the control room see it.

Calls are synchronous and short (a local SQLite write and, with Redis, one round trip
with a 1 s connect timeout), so the engine may call them from its event loop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from ..events import Event, EventBus, Kind
from ..identity import Operator, current_operator
from ..journal import Journal
from ..paths import state_dir
from .describe import summary
from .evaluate import evaluate_with, explain
from .layout import Keys
from .model import (
    OVERRIDE_KINDS,
    Context,
    Emergency,
    Flag,
    FlagError,
    Resolution,
    UnknownFlagError,
    validate_group,
    validate_id,
    validate_name,
    validate_percentage,
    validate_stickiness,
)
from .publish import Publication, Publisher, Verification
from .store import GLOBAL, AuditEntry, FlagStore, diff
from .strategies import Strategy
from .usage import FlagStats, UsageReader

if TYPE_CHECKING:
    from ..config import Config


class StatsUnavailable(Exception):
    """Usage stats need Redis: ``configured`` False means there is none in the config."""

    def __init__(self, message: str, configured: bool) -> None:
        super().__init__(message)
        self.configured = configured


@dataclass(frozen=True)
class Change:
    """The outcome of one change: what it was before and after, and whether apps got it."""

    flag: str
    action: str
    changed: bool
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    entry: AuditEntry | None
    publication: Publication | None  # None: no Redis configured

    @property
    def published(self) -> bool | None:
        return None if self.publication is None else self.publication.ok

    def to_json(self) -> dict[str, Any]:
        return {
            "flag": self.flag,
            "action": self.action,
            "changed": self.changed,
            "before": self.before,
            "after": self.after,
            "changes": diff(self.before, self.after),
            "audit_seq": self.entry.seq if self.entry else None,
            "published": self.published,
            "publication": self.publication.to_json() if self.publication else None,
        }


@dataclass(frozen=True)
class CheckResult:
    flag: Flag
    context: Context
    resolution: Resolution
    emergency: Emergency
    explanation: str

    def to_json(self) -> dict[str, Any]:
        return {
            "flag": self.flag.name,
            "context": self.context.to_dict(),
            **self.resolution.to_json(),
            "explanation": self.explanation,
            "emergency": self.emergency.active,
        }


@dataclass
class FlagRow:
    """One line of `feature list` and of the control room's flag table."""

    name: str
    description: str
    state: str  # on | off | emergency-off
    enabled: bool
    percentage: int
    stickiness: str
    overrides: int
    evaluations_last_hour: int | None  # None: no Redis, or unreachable
    last_change_at: float | None
    last_change_by: str
    last_change_action: str
    last_change_reason: str
    flag: Flag = field(repr=False)
    summary: str = ""  # the strategies in a few words (describe.summary)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "state": self.state,
            "enabled": self.enabled,
            "percentage": self.percentage,
            "stickiness": self.stickiness,
            "overrides": self.overrides,
            "summary": self.summary,
            "strategies": [s.to_json() for s in self.flag.strategies or ()],
            "company_overrides": dict(self.flag.company_overrides),
            "user_overrides": dict(self.flag.user_overrides),
            "evaluations_last_hour": self.evaluations_last_hour,
            "last_change": {
                "at": self.last_change_at,
                "by": self.last_change_by,
                "action": self.last_change_action,
                "reason": self.last_change_reason,
            },
        }


class FlagService:
    """Flags for one state directory, published under one Redis prefix."""

    def __init__(
        self,
        db: Journal | str | Path | None = None,
        redis_url: str | None = None,
        prefix: str = "portal-ops",
        *,
        bus: EventBus | None = None,
        operator: Operator | None = None,
    ) -> None:
        if isinstance(db, Journal):
            path = db.path
        elif db is None:
            path = state_dir() / "journal.db"
        else:
            path = Path(db)
        self.store = FlagStore(path)
        self.redis_url = redis_url
        self.keys = Keys(prefix)
        self.bus = bus
        self.operator = operator
        self._publisher: Publisher | None = None

    @classmethod
    def from_config(
        cls, config: Config | None, bus: EventBus | None = None, operator: Operator | None = None
    ) -> FlagService:
        """``[state] dir`` and ``[redis] url``/``prefix`` from the config; defaults without one."""
        if config is None:
            return cls(state_dir() / "journal.db", None, bus=bus, operator=operator)
        directory = state_dir(config.state.dir)
        return cls(
            directory / "journal.db",
            config.redis.url,
            config.redis.prefix,
            bus=bus,
            operator=operator,
        )

    # -- reading --------------------------------------------------------------------------

    def get(self, name: str) -> Flag:
        validate_name(name)
        return self.store.require(name)

    def flags(self) -> list[Flag]:
        return self.store.all()

    def emergency(self) -> Emergency:
        return self.store.emergency()

    def check(self, name: str, ctx: Context) -> CheckResult:
        """What ``ctx`` gets right now, from the store (the source of truth), and why."""
        flag = self.get(name)
        emergency = self.store.emergency()
        res = evaluate_with(flag, ctx, emergency)
        return CheckResult(flag, ctx, res, emergency, explain(res, flag, ctx, emergency))

    def list_flags(self) -> list[FlagRow]:
        """Every flag with its state, overrides, last hour's evaluations and last change."""
        flags = self.store.all()
        emergency = self.store.emergency()
        last = self.store.last_changes()
        counts: dict[str, int] | None = None
        if self.redis_url and flags:
            try:
                counts = UsageReader(self._pub().redis, self.keys).evaluations(
                    f.name for f in flags
                )
            except redis.RedisError:
                counts = None
        rows = []
        for f in flags:
            entry = last.get(f.name)
            if emergency.active and (entry is None or emergency.since >= entry.ts):
                entry = last.get(GLOBAL, entry)
            state = "emergency-off" if emergency.active else "on" if f.enabled else "off"
            rows.append(
                FlagRow(
                    name=f.name,
                    description=f.description,
                    state=state,
                    enabled=f.enabled,
                    percentage=f.percentage,
                    stickiness=f.stickiness,
                    overrides=f.overrides_count,
                    evaluations_last_hour=None if counts is None else counts.get(f.name, 0),
                    last_change_at=entry.ts if entry else None,
                    last_change_by=entry.operator if entry else "",
                    last_change_action=entry.action if entry else "",
                    last_change_reason=entry.reason if entry else "",
                    flag=f,
                    summary=summary(f),
                )
            )
        return rows

    def history(self, name: str | None = None, limit: int = 50) -> list[AuditEntry]:
        if name is not None:
            validate_name(name)
            entries = self.store.history(name, limit)
            if self.store.get(name) is None and not any(e.flag == name for e in entries):
                raise UnknownFlagError(name)
            return entries
        return self.store.history(None, limit)

    def stats(self, name: str, seconds: float = 3600, top: int = 10) -> FlagStats:
        validate_name(name)
        if self.store.get(name) is None and not self.store.history(name, 1):
            raise UnknownFlagError(name)
        if not self.redis_url:
            raise StatsUnavailable(
                "usage stats are counted in Redis by the apps; none is configured"
                " (set [redis] url in the config and pass --config)",
                configured=False,
            )
        try:
            return UsageReader(self._pub().redis, self.keys).stats(name, seconds, top)
        except redis.RedisError as exc:
            raise StatsUnavailable(
                f"Redis unreachable: {type(exc).__name__}: {exc}", True
            ) from None

    def restore_preview(self) -> list[Flag]:
        """The flags a `restore` would serve again (enabled ones), for the confirmation."""
        return [f for f in self.store.all() if f.enabled]

    # -- changing -------------------------------------------------------------------------

    def create(
        self,
        name: str,
        description: str = "",
        *,
        stickiness: str = "company",
        group: str = "",
        operator: Operator | None = None,
        reason: str = "",
        deployment_id: str | None = None,
        exist_ok: bool = False,
    ) -> Change:
        """A new flag, off (100 % once enabled). An existing name is an error unless exist_ok."""
        validate_name(name)
        validate_stickiness(stickiness)
        if group:
            validate_group(group)
        if not exist_ok and self.store.get(name) is not None:
            raise FlagError(f"flag {name!r} already exists")
        flag = Flag(name=name, description=description, stickiness=stickiness, group=group)
        stored, entry = self.store.create(flag, self._who(operator), reason, deployment_id)
        return self._upserted(name, "create", stored, entry)

    def delete(
        self,
        name: str,
        *,
        operator: Operator | None = None,
        reason: str = "",
        deployment_id: str | None = None,
    ) -> Change:
        validate_name(name)
        _, entry = self.store.delete(name, self._who(operator), reason, deployment_id)
        return self._committed(entry, "delete", None)

    def enable(
        self,
        name: str,
        percentage: int | str | None = None,
        *,
        operator: Operator | None = None,
        reason: str = "",
        deployment_id: str | None = None,
        action: str = "enable",
    ) -> Change:
        """Serve the flag; ``percentage`` None keeps the stored rollout percentage. A string
        (the CLI's ``--percentage``) is validated here, so "50%" is refused, not guessed at."""
        validate_name(name)
        fields: dict[str, Any] = {"enabled": True}
        if percentage is not None:
            fields["percentage"] = validate_percentage(percentage)
        return self._update(name, action, operator, reason, deployment_id, fields)

    def disable(
        self,
        name: str,
        *,
        operator: Operator | None = None,
        reason: str = "",
        deployment_id: str | None = None,
    ) -> Change:
        """Stop serving one flag; its percentage and overrides are kept for the next enable."""
        validate_name(name)
        return self._update(name, "disable", operator, reason, deployment_id, {"enabled": False})

    def set_percentage(
        self,
        name: str,
        percentage: int,
        *,
        operator: Operator | None = None,
        reason: str = "",
        deployment_id: str | None = None,
    ) -> Change:
        """Enable at ``percentage`` (the rollout's steps use this)."""
        return self.enable(
            name,
            percentage,
            operator=operator,
            reason=reason,
            deployment_id=deployment_id,
            action="rollout-step",
        )

    def restore_state(
        self,
        name: str,
        enabled: bool,
        percentage: int,
        *,
        operator: Operator | None = None,
        reason: str = "",
        deployment_id: str | None = None,
    ) -> Change:
        """Put a flag back to an earlier enabled/percentage (a rollout's step back)."""
        validate_name(name)
        fields = {"enabled": enabled, "percentage": validate_percentage(percentage)}
        return self._update(name, "rollout-step-back", operator, reason, deployment_id, fields)

    def override(
        self,
        name: str,
        kind: str,
        ident: str,
        value: bool | None,
        *,
        operator: Operator | None = None,
        reason: str = "",
        deployment_id: str | None = None,
    ) -> Change:
        """Force the flag on (True) or off (False) for one company or user; None clears it."""
        validate_name(name)
        if kind not in OVERRIDE_KINDS:
            raise FlagError(f"bad override kind {kind!r}: company or user")
        ident = validate_id(kind, ident)
        _, after, entry = self.store.set_override(
            name, kind, ident, value, self._who(operator), reason, deployment_id
        )
        return self._upserted(name, f"override-{kind}", after, entry)

    def set_strategies(
        self,
        name: str,
        strategies: Iterable[Strategy],
        *,
        operator: Operator | None = None,
        reason: str = "",
        deployment_id: str | None = None,
    ) -> Change:
        """Replace the flag's strategies (Unleash's model; an empty list: on for everyone)."""
        validate_name(name)
        fields: dict[str, Any] = {"strategies": tuple(strategies)}
        return self._update(name, "set-strategies", operator, reason, deployment_id, fields)

    def import_flags(
        self,
        flags: Iterable[Flag],
        *,
        replace_existing: bool = False,
        operator: Operator | None = None,
        reason: str = "",
    ) -> list[Change]:
        """Store flags read from Unleash: each exactly as Unleash serves it.

        Every flag is checked before anything is written. An existing flag is refused
        unless ``replace_existing``; replaced, its overrides are dropped (Unleash has
        none, and they would change someone's exposure). The kill switch is untouched.
        """
        flags = list(flags)
        for flag in flags:
            validate_name(flag.name)
        existing = {f.name for f in self.store.all()}
        clash = sorted(f.name for f in flags if f.name in existing)
        if clash and not replace_existing:
            raise FlagError(
                f"flag(s) already in the store: {', '.join(clash)} (--replace to overwrite)"
            )
        changes = []
        for flag in flags:
            if flag.name not in existing:
                self.store.create(Flag(flag.name, flag.description), self._who(operator), reason)
            fields: dict[str, Any] = {
                "description": flag.description,
                "enabled": flag.enabled,
                "strategies": flag.strategies,
                "overrides_cleared": True,
            }
            changes.append(self._update(flag.name, "import", operator, reason, None, fields))
        return changes

    def emergency_disable(
        self, reason: str, operator: Operator | None = None, deployment_id: str | None = None
    ) -> Change:
        """The kill switch: every flag off for everyone, overrides included, at once.

        Flags keep their configuration; :meth:`restore` serves it again. Idempotent: when
        already active nothing is recorded, and Redis is re-synced in case it missed it.
        """
        if not reason or not reason.strip():
            raise FlagError("emergency-disable needs a reason (--reason)")
        who = self._who(operator)
        state = Emergency(
            active=True,
            reason=reason.strip(),
            since=time.time(),
            by=str(who),
            deployment_id=deployment_id,
        )
        before, after, entry = self.store.set_emergency(state, who, reason.strip(), deployment_id)
        if entry is None:
            served = self._served_emergency()
            if served is None or served.active:
                return self._unchanged(GLOBAL, "emergency-disable", before.to_json())
            # on in this store, but another machine lifted it: switch it on again
            entry = self.store.record_global(
                "emergency-disable", served, state, who, reason.strip(), deployment_id
            )
            after = state
        return self._committed(entry, "emergency", after.to_json(), name="")

    def restore(
        self, operator: Operator | None = None, reason: str = "", deployment_id: str | None = None
    ) -> Change:
        """Lift the kill switch: every flag is served by its own configuration again."""
        who = self._who(operator)
        _, after, entry = self.store.set_emergency(Emergency(), who, reason, deployment_id)
        if entry is None:
            served = self._served_emergency()
            if served is None or not served.active:
                return self._unchanged(GLOBAL, "restore", after.to_json())
            # off in this store, but another machine switched it on: lift it from here
            entry = self.store.record_global(
                "restore", served, Emergency(), who, reason, deployment_id
            )
        return self._committed(entry, "restore", None, name="")

    def _served_emergency(self) -> Emergency | None:
        """The kill switch as Redis serves it (None: no Redis, or unreachable)."""
        if not self.redis_url:
            return None
        try:
            raw = self._pub().redis.get(self.keys.emergency)
        except redis.RedisError:
            return None
        if not raw:
            return Emergency()
        try:
            return Emergency.from_json(json.loads(raw))
        except ValueError:
            return Emergency(active=True)

    def prepare_release_flags(
        self, names: Iterable[str], deployment_id: str | None, operator: Operator | None = None
    ) -> list[Change]:
        """Phase 3: create the release's new flags, off. Idempotent: existing ones are untouched.

        Every name is validated before anything is written.
        """
        names = list(dict.fromkeys(names))
        for name in names:
            validate_name(name)
        return [
            self.create(
                name,
                "",
                operator=operator,
                reason="release flag (phase 3)",
                deployment_id=deployment_id,
                exist_ok=True,
            )
            for name in names
        ]

    def publish(self) -> Publication | None:
        """Send the whole store to Redis (``feature publish``); None without Redis."""
        if not self.redis_url:
            return None
        return self._pub().snapshot(self.store)

    def verify(self) -> Verification | None:
        """Compare what Redis serves with the store (raises if unreachable); None without Redis."""
        if not self.redis_url:
            return None
        return self._pub().verify(self.store)

    def sync(self) -> Publication | None:
        """Publish only if Redis is behind the store (after Redis was down or restarted)."""
        if not self.redis_url:
            return None
        return self._pub().sync(self.store)

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
        self.store.close()

    def __enter__(self) -> FlagService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------

    def _who(self, operator: Operator | None) -> Operator:
        return operator or self.operator or current_operator()

    def _pub(self) -> Publisher:
        if self._publisher is None:
            assert self.redis_url
            self._publisher = Publisher(self.redis_url, self.keys.prefix)
        return self._publisher

    def _update(
        self,
        name: str,
        action: str,
        operator: Operator | None,
        reason: str,
        deployment_id: str | None,
        fields: dict[str, Any],
    ) -> Change:
        _, after, entry = self.store.update(
            name, action, self._who(operator), reason, deployment_id, **fields
        )
        return self._upserted(name, action, after, entry)

    def _upserted(self, name: str, action: str, flag: Flag, entry: AuditEntry | None) -> Change:
        """The result of a write that leaves ``flag`` stored: unchanged (no ``entry``), or
        committed and published as an upsert."""
        if entry is None:
            return self._unchanged(name, action, flag.to_json())
        return self._committed(entry, "upsert", flag.to_json())

    def _unchanged(self, name: str, action: str, state: dict[str, Any]) -> Change:
        """Nothing to record; still make sure Redis holds the store's state."""
        return Change(name, action, False, state, state, None, self.sync())

    def _committed(
        self, entry: AuditEntry, op: str, data: dict[str, Any] | None, name: str | None = None
    ) -> Change:
        publication = None
        if self.redis_url:
            publication = self._pub().change(
                self.store, entry.seq, op, entry.flag if name is None else name, data
            )
        change = Change(
            entry.flag, entry.action, True, entry.before, entry.after, entry, publication
        )
        if self.bus is not None:
            self.bus.emit(
                Event(
                    kind=Kind.FLAG_CHANGED,
                    deployment_id=entry.deployment_id,
                    run="flags",
                    data={
                        "flag": entry.flag,
                        "change": entry.action,
                        "before": entry.before,
                        "after": entry.after,
                        "changes": diff(entry.before, entry.after),
                        "reason": entry.reason,
                        "operator": entry.operator_detail,
                        "published": change.published,
                    },
                )
            )
        return change
