"""Evaluation: one pure function of a flag's definition and an evaluation context.

`feature check`, the app-side :class:`~backend.flags.client.FlagClient`, the OpenFeature
provider and the control room all call :func:`evaluate`, so they can never disagree.

Order: emergency disable -> flag off -> user override -> company override -> strategies.
(A user override is the more specific target, so it wins over its company's.) The
strategies are Unleash's: any strategy that is on turns the flag on; a strategy is on when
its constraints and segments hold and its own rule says so (see ``strategies``).

Bucketing is Unleash's: ``murmur3_x86_32("{group}:{id}", seed 0) % 100 + 1`` compared
``<= percentage``, so a portal moving from or to Unleash keeps every user's exposure, and
raising the percentage never removes anyone who had the flag.

Each flag's strategies compile once (on first use) into one closure ``ctx -> Resolution``,
so an evaluation does no parsing and, for a rollout, one hash.
"""

from __future__ import annotations

from collections.abc import Callable

import mmh3

from .constraints import all_of, compile_constraint
from .model import EMPTY_CONTEXT, Context, Emergency, Flag, Reason, Resolution, Rule
from .strategies import (
    DEFAULT_STICKINESS,
    RANDOM_STICKINESS,
    Strategy,
    address_in,
    csv,
    networks,
    random_bucket,
    this_hostname,
)

_hash = mmh3.hash
_new = tuple.__new__
Decide = Callable[[Context], Resolution]


def bucket(group: str, identifier: str) -> int:
    """The 1..100 bucket of ``identifier`` in ``group`` (Unleash ``normalized_hash``)."""
    return _hash(f"{group}:{identifier}", 0, False) % 100 + 1


def _pair(reason: str, rule: str, error_code: str | None = None) -> tuple[Resolution, Resolution]:
    """(value False, value True) results for rules that hand back the caller's default."""
    return (
        Resolution(False, reason, rule, None, error_code),
        Resolution(True, reason, rule, None, error_code),
    )


# Results that do not depend on the caller are built once: the hot path allocates nothing.
_EMERGENCY = Resolution(False, Reason.DISABLED, Rule.EMERGENCY)
_OFF = Resolution(False, Reason.DISABLED, Rule.OFF)
_USER = (
    Resolution(False, Reason.TARGETING_MATCH, Rule.USER_OVERRIDE),
    Resolution(True, Reason.TARGETING_MATCH, Rule.USER_OVERRIDE),
)
_COMPANY = (
    Resolution(False, Reason.TARGETING_MATCH, Rule.COMPANY_OVERRIDE),
    Resolution(True, Reason.TARGETING_MATCH, Rule.COMPANY_OVERRIDE),
)
_EVERYONE_NO_STRATEGY = Resolution(True, Reason.STATIC, Rule.NO_STRATEGIES)
_NO_MATCH = Resolution(False, Reason.DEFAULT, Rule.NO_MATCH)
_UNKNOWN = _pair(Reason.ERROR, Rule.UNKNOWN_FLAG, "FLAG_NOT_FOUND")
_NOT_READY = _pair(Reason.ERROR, Rule.NOT_READY, "PROVIDER_NOT_READY")
_ERROR = _pair(Reason.ERROR, Rule.ERROR, "GENERAL")


def evaluate(
    flag: Flag | None,
    ctx: Context = EMPTY_CONTEXT,
    emergency: bool = False,
    default: bool = False,
) -> Resolution:
    """What ``ctx`` gets from ``flag`` and why. Never raises: a failure gives the default.

    ``flag`` None means the flag is unknown (reason ERROR, FLAG_NOT_FOUND, the default).
    A known flag answers as Unleash does: off (reason DEFAULT) when no strategy is on,
    including when a rollout buckets on a field the context does not give.
    """
    try:
        if flag is None:
            return _UNKNOWN[default is True]
        if emergency:
            return _EMERGENCY
        if not flag.enabled:
            return _OFF
        overrides = flag.user_overrides
        if overrides:
            who = ctx.user
            if who is not None and who in overrides:
                return _USER[overrides[who]]
        overrides = flag.company_overrides
        if overrides:
            who = ctx.company
            if who is not None and who in overrides:
                return _COMPANY[overrides[who]]
        decide = flag.decide
        if decide is None:
            decide = compile_flag(flag)
        return decide(ctx)
    except Exception:  # evaluation must never take the app down
        return _ERROR[default is True]


def compile_flag(flag: Flag) -> Decide:
    """The flag's strategies as one closure, cached on the (immutable) flag."""
    active = [(i, s) for i, s in enumerate(flag.strategies or ()) if not s.disabled]
    if not active:
        decide: Decide = lambda ctx: _EVERYONE_NO_STRATEGY  # noqa: E731
    elif len(active) == 1:
        decide = compile_strategy(active[0][1], flag.name, active[0][0])
    else:
        parts = tuple(compile_strategy(s, flag.name, i) for i, s in active)

        def decide(ctx: Context) -> Resolution:
            for part in parts:
                res = part(ctx)
                if res[0]:
                    return res
            return _NO_MATCH

    object.__setattr__(flag, "decide", decide)
    return decide


def strategy_checks(strategy: Strategy) -> list[Callable[[Context], bool]] | None:
    """The strategy's constraints then its segments' constraints; None if a segment it
    names is undefined (Unleash then never turns the strategy on)."""
    checks = [compile_constraint(c) for c in strategy.constraints]
    for segment in strategy.segments:
        if segment.constraints is None:
            return None
        checks += [compile_constraint(c) for c in segment.constraints]
    return checks


def compile_strategy(strategy: Strategy, flag_name: str, index: int) -> Decide:
    """``ctx -> Resolution`` for one strategy: value True when it is on."""
    checks = strategy_checks(strategy)
    failed = Resolution(False, Reason.DEFAULT, Rule.CONSTRAINT, None, None, index)
    if checks is None:
        return lambda ctx: failed
    constrained = bool(checks)
    check = all_of(checks)
    pct = strategy.percentage
    if check is not None and pct is not None and 0 < pct < 100:
        fused = _fused_rollout(strategy, flag_name, index, pct, check, failed)
        if fused is not None:
            return fused
    rule = _rule(strategy, flag_name, index, constrained)
    if check is None:
        return rule

    def guarded(ctx: Context) -> Resolution:
        return rule(ctx) if check(ctx) else failed

    return guarded


def _rule(strategy: Strategy, flag_name: str, index: int, constrained: bool) -> Decide:
    name = strategy.name
    matched = Reason.TARGETING_MATCH if constrained else Reason.STATIC
    on = Resolution(True, matched, Rule.STRATEGY, None, None, index)
    off = Resolution(False, Reason.DEFAULT, Rule.STRATEGY, None, None, index)
    pct = strategy.percentage
    if pct is not None:
        return _rollout(strategy, flag_name, index, pct, matched)
    if name == "default":
        return lambda ctx: on
    params = strategy.parameters
    if name == "userWithId":
        users = csv(params.get("userIds", ""))
        return lambda ctx: on if ctx.user in users else off
    if name == "remoteAddress":
        nets = networks(params.get("IPs", ""))
        return lambda ctx: on if address_in(ctx.remote_address, nets) else off
    if name == "applicationHostname":
        hosts = frozenset(h.lower() for h in csv(params.get("hostNames", "")))
        here = this_hostname()
        return lambda ctx: on if here in hosts else off
    return lambda ctx: off  # a strategy Unleash does not define: never on


def _rollout(strategy: Strategy, flag_name: str, index: int, pct: int, matched: str) -> Decide:
    """flexibleRollout and the older gradualRollout* strategies."""
    everyone = Resolution(True, matched, Rule.EVERYONE, None, None, index)
    nobody = Resolution(False, Reason.STATIC, Rule.NOBODY, None, None, index)
    missing = Resolution(False, Reason.DEFAULT, Rule.NO_STICKINESS, None, None, index)
    if pct <= 0:
        return lambda ctx: nobody
    stickiness = strategy.stickiness
    prefix = f"{strategy.group_id(flag_name)}:"
    split, rule = Reason.SPLIT, Rule.PERCENTAGE

    if stickiness == RANDOM_STICKINESS:
        if pct >= 100:
            return lambda ctx: everyone

        def by_chance(ctx: Context) -> Resolution:
            b = random_bucket()
            return _new(Resolution, (b <= pct, split, rule, b, None, index))

        return by_chance

    if stickiness == DEFAULT_STICKINESS:
        # Unleash's default: userId, then sessionId, then a random number
        if pct >= 100:
            return lambda ctx: everyone

        def by_default(ctx: Context) -> Resolution:
            ident = ctx.user
            if ident is None:
                ident = ctx.session
                if ident is None:
                    b = random_bucket()
                    return _new(Resolution, (b <= pct, split, rule, b, None, index))
            b = _hash(prefix + ident, 0, False) % 100 + 1
            return _new(Resolution, (b <= pct, split, rule, b, None, index))

        return by_default

    get = _stickiness_getter(stickiness)
    if pct >= 100:
        return lambda ctx: everyone if get(ctx) is not None else missing

    def by_field(ctx: Context) -> Resolution:
        ident = get(ctx)
        if ident is None:
            return missing
        b = _hash(prefix + ident, 0, False) % 100 + 1
        return _new(Resolution, (b <= pct, split, rule, b, None, index))

    return by_field


def _fused_rollout(
    strategy: Strategy,
    flag_name: str,
    index: int,
    pct: int,
    check: Callable[[Context], bool],
    failed: Resolution,
) -> Decide | None:
    """A constrained rollout by a context field in one closure (the common targeted
    rollout: one call fewer per evaluation than constraint + rollout)."""
    stickiness = strategy.stickiness
    if stickiness in (DEFAULT_STICKINESS, RANDOM_STICKINESS):
        return None
    get = _stickiness_getter(stickiness)
    prefix = f"{strategy.group_id(flag_name)}:"
    missing = Resolution(False, Reason.DEFAULT, Rule.NO_STICKINESS, None, None, index)
    split, rule = Reason.SPLIT, Rule.PERCENTAGE

    def targeted(ctx: Context) -> Resolution:
        if not check(ctx):
            return failed
        ident = get(ctx)
        if ident is None:
            return missing
        b = _hash(prefix + ident, 0, False) % 100 + 1
        return _new(Resolution, (b <= pct, split, rule, b, None, index))

    return targeted


def _stickiness_getter(name: str) -> Callable[[Context], str | None]:
    if name in ("company", "companyId"):
        if name == "company":
            return lambda ctx: ctx.company
        return lambda ctx: ctx.company if ctx.company is not None else ctx.get(name)
    if name in ("user", "userId"):
        return lambda ctx: ctx.user
    if name in ("session", "sessionId"):
        return lambda ctx: ctx.session
    return lambda ctx: ctx.get(name)


def not_ready(default: bool = False) -> Resolution:
    """The result before any flag data was ever loaded (OpenFeature PROVIDER_NOT_READY)."""
    return _NOT_READY[default is True]


def evaluate_with(
    flag: Flag | None, ctx: Context, emergency: Emergency | None, default: bool = False
) -> Resolution:
    """:func:`evaluate` with the emergency state as the store and the client keep it."""
    return evaluate(flag, ctx, bool(emergency and emergency.active), default)


def explain(res: Resolution, flag: Flag | None, ctx: Context, emergency: Emergency | None) -> str:
    """For `feature check` and the control room: the value, then which rule, strategy and
    constraint decided (one line per strategy when several were weighed)."""
    got = "ON" if res.value else "OFF"
    if res.rule == Rule.UNKNOWN_FLAG:
        return f"{got}: unknown flag, the default is served"
    if res.rule == Rule.ERROR:
        return f"{got}: evaluation failed, the default is served"
    if res.rule == Rule.NOT_READY:
        return f"{got}: no flag data loaded yet, the default is served"
    assert flag is not None
    if res.rule == Rule.EMERGENCY:
        why = f" ({emergency.reason})" if emergency and emergency.reason else ""
        return f"{got}: emergency disable is active{why}; every flag is off for everyone"
    if res.rule == Rule.OFF:
        return f"{got}: the flag is disabled"
    if res.rule == Rule.USER_OVERRIDE:
        return f"{got}: override for user {ctx.user}"
    if res.rule == Rule.COMPANY_OVERRIDE:
        return f"{got}: override for company {ctx.company}"
    if res.rule == Rule.NO_STRATEGIES:
        return f"{got}: enabled with no strategy, so on for everyone (as in Unleash)"
    active = [(i, s) for i, s in enumerate(flag.strategies or ()) if not s.disabled]
    if len(active) == 1 and flag.is_simple:
        return f"{got}: {strategy_outcome(active[0][1], flag.name, ctx, res)}"
    lines = []
    for i, strategy in active:
        if res.value and i != res.strategy:
            continue
        mine = res if i == res.strategy else None
        lines.append(
            f"  strategy {i + 1} ({strategy.name}: {strategy.describe(flag.name)}):"
            f" {strategy_outcome(strategy, flag.name, ctx, mine)}"
        )
    if len(active) == 1:
        head = f"{got}: its one strategy is {'on' if res.value else 'off'}"
    elif res.value:
        head = f"{got}: strategy {(res.strategy or 0) + 1} of {len(active)} is on"
    else:
        head = f"{got}: none of the {len(active)} strategies is on"
    return head + "\n" + "\n".join(lines)


def strategy_outcome(
    strategy: Strategy, flag_name: str, ctx: Context, res: Resolution | None = None
) -> str:
    """Why one strategy is on or off for ``ctx``: the constraint that failed, or its rule."""
    from .constraints import getter

    checks = [(c, compile_constraint(c)) for c in strategy.constraints]
    for segment in strategy.segments:
        if segment.constraints is None:
            return f"segment {segment.id} is not defined, so the strategy is never on"
        checks += [(c, compile_constraint(c)) for c in segment.constraints]
    held = []
    for constraint, check in checks:
        if not check(ctx):
            value = getter(constraint.context_name)(ctx)
            shown = "absent" if value is None else repr(value)
            return f"constraint {constraint.describe()} failed ({constraint.context_name} {shown})"
        held.append(constraint.describe())
    prefix = f"constraints held ({'; '.join(held)}); " if held else ""
    if res is None:
        res = compile_strategy(strategy, flag_name, 0)(ctx)
    pct = strategy.percentage
    if pct is not None:
        stickiness = strategy.stickiness
        group = strategy.group_id(flag_name)
        if res.rule == Rule.NOBODY:
            return f"{prefix}enabled at 0% (nobody)"
        if res.rule == Rule.NO_STICKINESS:
            return (
                f"{prefix}the rollout buckets on {stickiness!r}, which the context does not"
                " give (off, as in Unleash)"
            )
        if res.rule == Rule.EVERYONE:
            return f"{prefix}enabled at 100% (everyone with {stickiness})"
        ident = _sticky_value(stickiness, ctx)
        if stickiness == DEFAULT_STICKINESS and ident is not None:
            stickiness = "userId" if ctx.user is not None else "sessionId"
        op = "<=" if res.value else ">"
        if ident is None:
            return f"{prefix}random bucket {res.bucket} {op} {pct}% ({stickiness} stickiness)"
        return (
            f"{prefix}{stickiness} {ident} is in bucket {res.bucket} {op} {pct}%"
            f" (murmur3 of {group}:{ident})"
        )
    if strategy.name not in ("default", "userWithId", "remoteAddress", "applicationHostname"):
        return f"unknown strategy {strategy.name!r}: never on"
    return prefix + ("on" if res.value else f"off ({strategy.describe(flag_name)})")


def _sticky_value(stickiness: str, ctx: Context) -> str | None:
    if stickiness == RANDOM_STICKINESS:
        return None
    if stickiness == DEFAULT_STICKINESS:
        return ctx.user if ctx.user is not None else ctx.session
    return _stickiness_getter(stickiness)(ctx)
