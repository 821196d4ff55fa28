"""An OpenFeature provider on top of :class:`FlagClient`, so apps use the standard API::

    from openfeature import api
    api.set_provider(PortalOpsProvider(FlagClient(url)))
    client = api.get_client()
    client.get_boolean_value("ui-improvements", False, EvaluationContext("AB12A", {"user": "42"}))

Context mapping: ``company``/``companyId``, ``user``/``userId``, ``session``/``sessionId``
attributes fill the built-in fields; the targeting key fills ``targeting_key_field``
(the company by default) unless that attribute is given; every other attribute is a
property (for custom stickiness). Flags are booleans: other types resolve to the
default with TYPE_MISMATCH.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from .client import CHANGED, ERROR, READY, STALE, FlagClient
from .model import Context

_ALIASES = {
    "company": "company",
    "companyId": "company",
    "company_id": "company",
    "user": "user",
    "userId": "user",
    "user_id": "user",
    "session": "session",
    "sessionId": "session",
    "session_id": "session",
    # Unleash's other standard context fields, for constraints
    "environment": "environment",
    "appName": "app_name",
    "remoteAddress": "remote_address",
    "currentTime": "current_time",
}


def to_context(ctx: EvaluationContext | None, targeting_key_field: str = "company") -> Context:
    """An OpenFeature evaluation context as ours."""
    if ctx is None:
        return Context()
    fields: dict[str, Any] = {}
    props: dict[str, Any] = {}
    for key, value in (ctx.attributes or {}).items():
        target = _ALIASES.get(key)
        if target:
            fields[target] = value
        elif isinstance(value, str | int | float | bool):
            props[key] = value
    if ctx.targeting_key:
        if targeting_key_field in ("company", "user", "session"):
            fields.setdefault(targeting_key_field, ctx.targeting_key)
        else:
            props.setdefault(targeting_key_field, ctx.targeting_key)
    return Context(properties=props, **fields)


class PortalOpsProvider(AbstractProvider):
    def __init__(
        self, client: FlagClient, targeting_key_field: str = "company", wait: float = 2.0
    ) -> None:
        self.client = client
        self.targeting_key_field = targeting_key_field
        self.wait = wait
        self._unlisten = client.add_listener(self._on_client_event)

    def get_metadata(self) -> Metadata:
        return Metadata(name="portal-ops")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Start the client; OpenFeature marks us READY when this returns."""
        self.client.start(self.wait)

    def shutdown(self) -> None:
        self._unlisten()
        self.client.close()

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        res = self.client.resolve(
            flag_key, to_context(evaluation_context, self.targeting_key_field), default_value
        )
        meta: dict[str, bool | int | float | str] = {"rule": res.rule}
        if res.bucket is not None:
            meta["bucket"] = res.bucket
        if res.strategy is not None:
            meta["strategy"] = res.strategy  # index (from 0) of the strategy that decided
        return FlagResolutionDetails(
            value=res.value,
            reason=Reason(res.reason),
            variant=None if res.error_code else res.variant,
            error_code=ErrorCode(res.error_code) if res.error_code else None,
            error_message=f"{res.rule}: {flag_key}" if res.error_code else None,
            flag_metadata=meta,
        )

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return _mismatch(default_value)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return _mismatch(default_value)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return _mismatch(default_value)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return _mismatch(default_value)

    def _on_client_event(self, event: str, names: list[str]) -> None:
        details = ProviderEventDetails(
            flags_changed=names or None, message=self.client.last_error or None
        )
        if event == CHANGED:
            self.emit_provider_configuration_changed(details)
        elif event == STALE:
            self.emit_provider_stale(details)
        elif event == ERROR:
            self.emit_provider_error(details)
        elif event == READY:
            self.emit_provider_ready(details)


def _mismatch(default: Any) -> FlagResolutionDetails[Any]:
    return FlagResolutionDetails(
        value=default,
        reason=Reason.ERROR,
        error_code=ErrorCode.TYPE_MISMATCH,
        error_message="portal-ops flags are booleans",
    )
