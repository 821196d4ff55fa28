"""Evaluation: one pure function of a flag's definition and an evaluation context.

`feature check`, the app-side :class:`~backend.flags.client.FlagClient`, the OpenFeature
provider and the control room all call :func:`evaluate`, so they can never disagree.

Order: emergency disable -> flag off -> user override -> company override -> percentage.
(A user override is the more specific target, so it wins over its company's.)

Bucketing is Unleash's ``flexibleRollout``: ``murmur3_x86_32("{group}:{id}", seed 0) % 100 + 1``
compared ``<= percentage``, so a portal moving from or to Unleash keeps every company's
exposure, and raising the percentage never removes anyone who had the flag.
"""

from __future__ import annotations

import mmh3

from .model import EMPTY_CONTEXT, Context, Emergency, Flag, Reason, Resolution, Rule

_hash = mmh3.hash
_new = tuple.__new__


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
_EVERYONE = Resolution(True, Reason.STATIC, Rule.EVERYONE)
_NOBODY = Resolution(False, Reason.STATIC, Rule.NOBODY)
_NO_STICKINESS = _pair(Reason.DEFAULT, Rule.NO_STICKINESS)
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
    ``default`` is also served when the flag buckets on a context field the caller did not
    give (reason DEFAULT), as OpenFeature providers do.
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
        pct = flag.percentage
        if pct >= 100:
            return _EVERYONE
        if pct <= 0:
            return _NOBODY
        stickiness = flag.stickiness
        if stickiness == "company":
            ident = ctx.company
        elif stickiness == "user":
            ident = ctx.user
        else:
            ident = ctx.get(stickiness)
        if ident is None:
            return _NO_STICKINESS[default is True]
        b = _hash(flag.prefix + ident, 0, False) % 100 + 1
        return _new(Resolution, (b <= pct, Reason.SPLIT, Rule.PERCENTAGE, b, None))
    except Exception:  # evaluation must never take the app down
        return _ERROR[default is True]


def not_ready(default: bool = False) -> Resolution:
    """The result before any flag data was ever loaded (OpenFeature PROVIDER_NOT_READY)."""
    return _NOT_READY[default is True]


def evaluate_with(
    flag: Flag | None, ctx: Context, emergency: Emergency | None, default: bool = False
) -> Resolution:
    """:func:`evaluate` with the emergency state as the store and the client keep it."""
    return evaluate(flag, ctx, bool(emergency and emergency.active), default)


def explain(res: Resolution, flag: Flag | None, ctx: Context, emergency: Emergency | None) -> str:
    """One sentence for `feature check` and the control room: the value and the rule."""
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
    if res.rule == Rule.EVERYONE:
        return f"{got}: enabled at 100% (everyone)"
    if res.rule == Rule.NOBODY:
        return f"{got}: enabled at 0% (nobody)"
    if res.rule == Rule.NO_STICKINESS:
        return (
            f"{got}: the flag buckets on {flag.stickiness!r}, which the context does not give;"
            " the default is served"
        )
    ident = ctx.get(flag.stickiness)
    op = "<=" if res.value else ">"
    return (
        f"{got}: {flag.stickiness} {ident} is in bucket {res.bucket} {op} {flag.percentage}%"
        f" (murmur3 of {flag.bucket_group}:{ident})"
    )
