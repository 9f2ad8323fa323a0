"""The parts of the two resources' specs that the decisions read.

Plain frozen dataclasses so that the core does not depend on how a shell parsed its input: the
Kubernetes shell builds them from `controllers.api` models, the simulator from a scenario.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Scale in only when load is below this share of the target (the prototype's 0.70).
SCALE_IN_RATIO = 0.70

DEFAULT_MARK_LABEL: Mapping[str, str] = {"delete": "true"}


@dataclass(frozen=True)
class WorkerSetSpec:
    """ElasticWorker: how many pods, and which ones may be deleted."""

    name: str
    min_replicas: int
    max_replicas: int
    replicas: int | None = None
    scale: int = 0
    policy: str = "immediate"  # immediate | selector | disabled
    policy_selector: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def clamp(self, n: int) -> int:
        # max() last: a spec with min > max is invalid and never planned, but must not crash.
        return max(0, min(max(n, self.min_replicas), self.max_replicas))


@dataclass(frozen=True)
class AutoscalerSpec:
    """ElasticWorkerAutoscaler: target load, scale-in timing, metric freshness."""

    target: float
    min_replicas: int
    max_replicas: int
    back_off: float = 30.0
    metric_max_age: float = 30.0
    tolerance: float = 0.0
    stabilization: float = 0.0
    mark_label: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MARK_LABEL))
    concurrency: int = 1  # worker_concurrency: KEDA's query divides by it

    @property
    def scale_in_below(self) -> float:
        return SCALE_IN_RATIO * self.target
