"""How a person reads who acted and with what values: the words of a rollback's trigger
(``automatic: rule error-rate (error_rate 3.45% > 1%)``, ``operator alice@bastion``).

Shared by the room's view model and the command line's printers; no Textual here, so the
CLI can import it without the room.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def operator_text(raw: Any) -> str:
    """``alice@bastion`` from an operator record (or whatever text stands for one)."""
    if isinstance(raw, Mapping):
        user, host = raw.get("user", ""), raw.get("host", "")
        return f"{user}@{host}" if host else str(user)
    return str(raw or "")


def number(raw: Any) -> float | None:
    """A float from an event field, None for missing, boolean or non-numeric values."""
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def trigger_text(raw: Any) -> str:
    """Who started a rollback: ``operator alice@bastion``, ``automatic: phase switch failed
    (reload)``, ``automatic: rule p95 (p95 612 ms > 500 ms)``."""
    if not isinstance(raw, Mapping):
        return f"operator ({raw})" if raw else "operator (unknown)"
    kind = str(raw.get("kind") or ("rule" if raw.get("rule") else "manual"))
    if kind in ("rule", "monitor") and raw.get("rule"):
        return f"automatic: rule {raw['rule']}{_rule_values(raw)}"
    if kind == "failure":
        detail = raw.get("detail")
        return f"automatic: phase {raw.get('phase') or '?'} failed" + (
            f" ({detail})" if detail else ""
        )
    if kind == "manual":
        who = operator_text(raw.get("operator"))
        return f"operator {who}" if who else "operator (unknown)"
    extra = raw.get("phase") or raw.get("rule") or ""
    return f"{kind} ({extra})" if extra else kind


def _metric_value(metric: str, value: Any) -> str:
    amount = number(value)
    if amount is None:
        return "?"
    if "rate" in metric or metric in ("uptime", "errors"):
        return f"{amount * 100:.3g}%"
    if metric.startswith("p") or "latency" in metric or metric.endswith("_ms"):
        return f"{amount:.0f} ms"
    return f"{amount:g}"


def _rule_values(raw: Mapping[str, Any]) -> str:
    """`` (error_rate 3.45% > 1%)``: the last bad value against its threshold."""
    metric = str(raw.get("metric") or "")
    values = raw.get("values")
    if not metric or not isinstance(values, list) or not values:
        return ""
    text = f"{metric} {_metric_value(metric, values[-1])}"
    if raw.get("threshold") is not None:
        text += f" {raw.get('op') or '>'} {_metric_value(metric, raw['threshold'])}"
    return f" ({text})"


def _holder(raw: Any) -> str:
    """Who holds a lock: the engine's owner record names the operator and deployment."""
    if isinstance(raw, Mapping):
        if raw.get("operator"):
            return str(raw["operator"])
        if raw.get("user"):
            return operator_text(raw)
        return str(raw.get("deployment_id") or "")
    return str(raw or "")
