"""The one piece of glue between ``portal-ops monitor --auto-rollback`` and the rollback
engine. Kept in one small function so the rollback's owner can adjust it alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..events import EventBus
from ..journal import Journal
from .rules import TriggerInfo
from .runner import OnTrigger

if TYPE_CHECKING:
    from ..config import Config


class RollbackUnavailable(RuntimeError):
    """No rollback engine in this build: the monitor says so in an incident."""


def rollback_callback(
    config: Config, deployment_id: str | None, bus: EventBus, journal: Journal
) -> OnTrigger:
    """``on_trigger`` for the CLI: the engine's rollback of ``deployment_id``, imported
    lazily (``Engine.rollback``, else a ``backend.engine.rollback.rollback`` coroutine)."""

    async def on_trigger(info: TriggerInfo) -> Any:
        try:
            from ..engine import Engine
        except ImportError:
            Engine = None
        if Engine is not None and hasattr(Engine, "rollback"):
            engine = Engine(config, bus=bus, journal=journal)
            return await engine.rollback(deployment_id, info.reason, trigger=info.to_dict())
        try:
            from .. import rollback as module
        except ImportError as exc:
            raise RollbackUnavailable(f"auto-rollback unavailable: {exc}") from None
        function = getattr(module, "rollback", None)
        if function is None:
            raise RollbackUnavailable(
                "auto-rollback unavailable: no backend.engine.rollback.rollback"
            )
        return await function(config, deployment_id, info.reason, trigger=info.to_dict())

    return on_trigger
