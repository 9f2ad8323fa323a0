"""What an autoscaler decision returns, whatever the policy."""

from __future__ import annotations

from dataclasses import dataclass

from controllers.core.types import Action


@dataclass(frozen=True)
class AutoscalerMemory:
    """What a controller keeps between syncs. Lost on restart except `low_since`, which the
    Kubernetes shell also records in the autoscaler's status (`lowLoadSince`)."""

    low_since: float | None = None
    recommendations: tuple[tuple[float, int], ...] = ()


@dataclass(frozen=True)
class Decision:
    memory: AutoscalerMemory
    actions: tuple[Action, ...]
    replicas: int  # the desired count after this decision
    load: float | None  # the load the decision used; None when unknown
    reason: str
