"""Unleash's formats: its feature documents in and out, and its evaluation context.

Two documents are read: the export of Unleash's admin UI/API (``features``,
``featureStrategies``, ``featureEnvironments``, ``segments``, ``featureStrategySegments``,
one environment's strategies chosen), and the client API document (``features`` with
``strategies`` inline, ``segments`` alongside), which is also what Unleash's SDKs bootstrap
from. The export written is the former, so Unleash's import takes it back.

What portal-ops cannot serve identically is refused with the flag named (exit 2), never
dropped silently: custom strategies, dependencies on other flags, operators outside
Unleash's current API. Variants are left out with a warning (flags here are booleans;
variants never change ``is_enabled``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .constraints import Constraint
from .model import Context, Flag, FlagError, validate_name
from .strategies import KNOWN, Segment, Strategy

EXPORT_VERSION = 1


@dataclass
class Imported:
    """The flags read from an Unleash document, and what was left out."""

    flags: list[Flag]
    environment: str
    warnings: list[str] = field(default_factory=list)


def context_from_unleash(raw: Mapping[str, Any]) -> Context:
    """An Unleash context (``userId``, ``sessionId``, ``properties``...) as ours."""
    props = raw.get("properties") or {}
    return Context(
        company=None,
        user=raw.get("userId"),
        session=raw.get("sessionId"),
        properties={k: v for k, v in props.items() if v is not None},
        environment=raw.get("environment"),
        app_name=raw.get("appName"),
        remote_address=raw.get("remoteAddress"),
        current_time=raw.get("currentTime"),
    )


def read_document(doc: Any, environment: str | None = None, segments_doc: Any = None) -> Imported:
    """Flags from an Unleash export or client document; bad input raises FlagError.

    ``segments_doc`` (``GET /api/admin/segments``: ``{"segments": [...]}`` or a list)
    gives the segments' constraints, which Unleash's export leaves out (names only).
    """
    if not isinstance(doc, Mapping) or not isinstance(doc.get("features"), list):
        raise FlagError("not an Unleash document: no 'features' list")
    listed = doc.get("segments") or []
    segments = _segments(listed)
    if segments_doc is not None:
        extra = segments_doc.get("segments") if isinstance(segments_doc, Mapping) else segments_doc
        if not isinstance(extra, list):
            raise FlagError("segments file: a 'segments' list is expected")
        known = _segments(extra)
        by_name = {s.name: s for s in known.values() if s is not None and s.name}
        for sid, seg in list(segments.items()):
            if seg is None:  # named in the export only: its definition by name, else by id
                name = next((str(x.get("name") or "") for x in listed if x.get("id") == sid), "")
                segments[sid] = by_name.get(name) or known.get(sid)
        for sid, seg in known.items():
            segments.setdefault(sid, seg)
    if "featureStrategies" in doc or "featureEnvironments" in doc:
        return _read_export(doc, segments, environment)
    return _read_client(doc, segments, environment or "default")


def _segments(raw: Iterable[Any]) -> dict[int, Segment | None]:
    """Segments by id; for one listed without its constraints (Unleash's export), None
    (see ``_segment_names`` for its name)."""
    out: dict[int, Segment | None] = {}
    for i, s in enumerate(raw):
        if not isinstance(s, Mapping) or not isinstance(s.get("id"), int):
            raise FlagError(f"segment {i + 1}: an object with an integer id is expected")
        where = f"segment {s['id']}"
        if "constraints" not in s:
            out[s["id"]] = None
            continue
        constraints = tuple(Constraint.from_unleash(c, where) for c in s.get("constraints") or [])
        out[s["id"]] = Segment(s["id"], str(s.get("name") or ""), constraints)
    return out


def _segment_refs(
    ids: Iterable[Any], segments: Mapping[int, Segment | None], where: str = ""
) -> list[Segment]:
    """Resolved segments. An id not listed at all stays, as "never on" (Unleash); one
    listed without its constraints cannot be served identically: refused."""
    out = []
    for raw in ids:
        sid = int(raw)
        if sid in segments and segments[sid] is None:
            raise FlagError(
                f"{where}: segment {sid} is listed without its constraints (Unleash exports"
                " segments by name only): give them with --segments FILE"
                " (GET /api/admin/segments)"
            )
        out.append(segments.get(sid) or Segment(sid, "", None))
    return out


def _check_feature(feature: Any, where: str) -> str:
    if not isinstance(feature, Mapping):
        raise FlagError(f"{where}: a feature must be an object")
    name = feature.get("name")
    try:
        validate_name(name)
    except FlagError as exc:
        raise FlagError(f"{where}: {exc}") from None
    if feature.get("dependencies"):
        raise FlagError(
            f"flag {name!r} depends on other flags (dependencies): not supported here,"
            " its exposure could not be kept"
        )
    return str(name)


def _check_strategy(name: str, strategy: Strategy, warnings: list[str] | None = None) -> None:
    if strategy.name == "applicationHostname" and warnings is not None:
        warnings.append(
            f"{name}: applicationHostname is served from this machine's name here; Unleash"
            " SDKs differ on it (UnleashClient 6.9.1 never enables it): check this flag"
        )
    if strategy.name not in KNOWN:
        raise FlagError(
            f"flag {name!r}: custom strategy {strategy.name!r} is not supported"
            f" (supported: {', '.join(KNOWN)})"
        )


def _read_client(doc: Mapping[str, Any], segments: dict[int, Segment | None], env: str) -> Imported:
    flags: list[Flag] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for i, feature in enumerate(doc["features"]):
        name = _check_feature(feature, f"feature {i + 1}")
        if name in seen:
            raise FlagError(f"flag {name!r} appears twice")
        seen.add(name)
        strategies = []
        for j, raw in enumerate(feature.get("strategies") or []):
            where = f"flag {name!r}, strategy {j + 1}"
            strategy = Strategy.parse(
                raw, where, _segment_refs(raw.get("segments") or [], segments)
            )
            _check_strategy(name, strategy, warnings)
            strategies.append(strategy)
            if raw.get("variants"):
                warnings.append(f"{name}: strategy {j + 1} variants left out (booleans only)")
        if feature.get("variants"):
            warnings.append(f"{name}: variants left out (flags here are booleans)")
        flags.append(
            Flag(
                name=name,
                description=str(feature.get("description") or ""),
                enabled=bool(feature.get("enabled", False)),
                strategies=tuple(strategies),
            )
        )
    return Imported(flags, env, warnings)


def _read_export(
    doc: Mapping[str, Any], segments: dict[int, Segment | None], environment: str | None
) -> Imported:
    envs = [e for e in doc.get("featureEnvironments") or [] if isinstance(e, Mapping)]
    names = sorted({str(e.get("environment")) for e in envs if e.get("environment")})
    if environment is None:
        if len(names) > 1:
            raise FlagError(
                f"the export holds several environments ({', '.join(names)}):"
                " choose one with --environment"
            )
        environment = names[0] if names else "default"
    elif names and environment not in names:
        raise FlagError(
            f"environment {environment!r} is not in the export (it has: {', '.join(names)})"
        )
    enabled = {
        str(e.get("featureName") or e.get("name")): bool(e.get("enabled"))
        for e in envs
        if e.get("environment") == environment
    }
    by_strategy: dict[str, list[int]] = {}
    for link in doc.get("featureStrategySegments") or []:
        by_strategy.setdefault(str(link.get("featureStrategyId")), []).append(
            int(link.get("segmentId"))
        )
    strategies: dict[str, list[Mapping[str, Any]]] = {}
    for raw in doc.get("featureStrategies") or []:
        if not isinstance(raw, Mapping):
            raise FlagError("featureStrategies: objects are expected")
        if raw.get("environment", environment) != environment:
            continue
        strategies.setdefault(str(raw.get("featureName")), []).append(raw)
    flags: list[Flag] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for i, feature in enumerate(doc["features"]):
        name = _check_feature(feature, f"feature {i + 1}")
        if name in seen:
            raise FlagError(f"flag {name!r} appears twice")
        seen.add(name)
        parsed = []
        ordered = sorted(
            enumerate(strategies.get(name, [])),
            key=lambda p: (p[1].get("sortOrder", 0) or 0, p[0]),
        )
        for j, (_, raw) in enumerate(ordered):
            where = f"flag {name!r}, strategy {j + 1}"
            ids = raw.get("segments") or by_strategy.get(str(raw.get("id")), [])
            strategy = Strategy.parse(raw, where, _segment_refs(ids, segments, where))
            _check_strategy(name, strategy, warnings)
            parsed.append(strategy)
            if raw.get("variants"):
                warnings.append(f"{name}: strategy {j + 1} variants left out (booleans only)")
        if feature.get("variants"):
            warnings.append(f"{name}: variants left out (flags here are booleans)")
        flags.append(
            Flag(
                name=name,
                description=str(feature.get("description") or ""),
                enabled=enabled.get(name, False),
                strategies=tuple(parsed),
            )
        )
    return Imported(flags, environment, warnings)


def parse_strategy(raw: Any, where: str) -> Strategy:
    """One strategy in Unleash's shape, segments given inline; a custom strategy refused."""
    if not isinstance(raw, Mapping):
        raise FlagError(f"{where}: a strategy must be an object")
    inline = raw.get("segments") or []
    if not isinstance(inline, list) or not all(isinstance(s, Mapping) for s in inline):
        raise FlagError(f"{where}: segments must be objects with id, name, constraints")
    strategy = Strategy.parse(
        raw, where, _segment_refs([s.get("id") for s in inline], _segments(inline), where)
    )
    if strategy.name not in KNOWN:
        raise FlagError(
            f"{where}: custom strategy {strategy.name!r} is not supported"
            f" (supported: {', '.join(KNOWN)})"
        )
    return strategy


# -- export ---------------------------------------------------------------------------------

# portal-ops' field names as Unleash's (a context's company is the property companyId)
_UNLEASH_FIELD = {"company": "companyId", "user": "userId", "session": "sessionId"}


def unleash_field(name: str) -> str:
    return _UNLEASH_FIELD.get(name, name)


def export_document(flags: Iterable[Flag], environment: str = "default") -> dict[str, Any]:
    """Unleash's export format (admin UI "Export", ``/api/admin/features-batch/export``).

    Unleash exports segments by name only (their constraints stay on the server), so a
    strategy's segments are written as its own constraints (the same AND): the document
    is complete and imports into any Unleash instance with every answer kept.

    Company and user overrides have no Unleash equivalent as such: each becomes a first
    strategy (``default`` constrained ``companyId IN [...]`` / ``userId IN [...]``) for the
    forced-on ids and a ``NOT_IN`` constraint on every other strategy for the forced-off
    ids, so every context keeps its answer. The kill switch is not exported.
    """
    features: list[dict[str, Any]] = []
    strategies: list[dict[str, Any]] = []
    envs: list[dict[str, Any]] = []
    for flag in flags:
        features.append(
            {
                "name": flag.name,
                "description": flag.description,
                "type": "release",
                "project": "default",
                "stale": False,
                "impressionData": False,
                "archived": False,
            }
        )
        envs.append(
            {
                "name": flag.name,
                "featureName": flag.name,
                "environment": environment,
                "enabled": flag.enabled,
                "variants": [],
            }
        )
        for order, strategy in enumerate(_with_overrides(flag)):
            inlined = list(strategy.constraints)
            for segment in strategy.segments:
                if segment.constraints is None:
                    # undefined segment: never on; an impossible constraint says the same
                    inlined.append(Constraint("portalOpsUndefinedSegment", "IN", ()))
                else:
                    inlined += segment.constraints
            entry: dict[str, Any] = {
                "id": f"{flag.name}#{order}",
                "featureName": flag.name,
                "name": strategy.name,
                "title": strategy.title or None,
                "disabled": strategy.disabled,
                "parameters": _unleash_parameters(strategy, flag.name),
                "constraints": [
                    c.to_unleash() | {"contextName": unleash_field(c.context_name)} for c in inlined
                ],
                "sortOrder": order,
                "segments": [],
                "variants": [],
            }
            strategies.append(entry)
    return {
        "features": features,
        "featureStrategies": strategies,
        "featureEnvironments": envs,
        "contextFields": _context_fields(strategies),
        "featureTags": [],
        "segments": [],
        "tagTypes": [],
        "dependencies": [],
    }


_STANDARD_FIELDS = {
    "userId",
    "sessionId",
    "remoteAddress",
    "environment",
    "appName",
    "currentTime",
    "default",
    "random",
}


def _context_fields(strategies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The custom context fields the strategies use (Unleash's import wants them known);
    those used as stickiness are marked so."""
    used: dict[str, bool] = {}
    for s in strategies:
        sticky = s["parameters"].get("stickiness")
        if sticky and sticky not in _STANDARD_FIELDS:
            used[sticky] = True
        for c in s["constraints"]:
            if c["contextName"] not in _STANDARD_FIELDS:
                used.setdefault(c["contextName"], False)
    return [
        {
            "name": name,
            "description": "from portal-ops",
            "stickiness": sticky,
            "sortOrder": 10,
            "legalValues": [],
        }
        for name, sticky in sorted(used.items())
    ]


def _unleash_parameters(strategy: Strategy, flag_name: str) -> dict[str, str]:
    params = dict(strategy.parameters)
    if strategy.is_rollout:
        params["stickiness"] = unleash_field(params.get("stickiness") or "default")
        params["groupId"] = params.get("groupId") or flag_name
        params.setdefault("rollout", "100")
    return params


def _with_overrides(flag: Flag) -> list[Strategy]:
    """The flag's strategies, with its overrides written as constraints (see above)."""
    out: list[Strategy] = []
    forced_off: list[Constraint] = []
    for kind, overrides in (("user", flag.user_overrides), ("company", flag.company_overrides)):
        on = sorted(i for i, v in overrides.items() if v)
        off = sorted(i for i, v in overrides.items() if not v)
        field_name = unleash_field(kind)
        if on:
            guard = [Constraint(field_name, "IN", tuple(on))]
            if kind == "company":
                # a user forced off beats the company forced on
                guard += [c for c in forced_off if c.context_name == "userId"]
            out.append(Strategy("default", {}, tuple(guard)))
        if off:
            forced_off.append(Constraint(field_name, "NOT_IN", tuple(off)))
    rest = flag.strategies or ()
    if not rest and (out or forced_off):
        rest = (Strategy("default"),)  # "on for everyone" must survive the NOT_INs below
    for strategy in rest:
        out.append(
            Strategy(
                strategy.name,
                strategy.parameters,
                strategy.constraints + tuple(forced_off),
                strategy.segments,
                strategy.disabled,
                strategy.title,
            )
        )
    return out
