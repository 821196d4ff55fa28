"""The deploy engine: the front door (:class:`Engine`), the nine deploy phases, the ten
rollback phases, resume, command execution, lock, host layout and traffic.

Subsystems (checks, flags, monitor, notify) never import this package; the engine calls
them through one adapter each.
"""

from .deploy import Deployment, DeploymentResult, DeployOptions
from .front import Engine

__all__ = ["DeployOptions", "Deployment", "DeploymentResult", "Engine"]
