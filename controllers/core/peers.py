"""The peers' decisions with their real defaults, for side-by-side runs.

- `decide_hpa`: the HorizontalPodAutoscaler on the load metric (15 s sync, tolerance 0.1,
  scale-up max(4 pods, 100 %) per period, scale-down stabilisation 300 s).
- `decide_keda`: the Airflow Helm chart's KEDA ScaledObject: desired =
  ceil((running + queued) / concurrency), fed to the same HPA rules.
"""

from __future__ import annotations

import math

from controllers.core.decision import AutoscalerMemory, Decision
from controllers.core.replicas import calculate_replicas, clamp, remember, stabilized
from controllers.core.scale_in import fresh_load
from controllers.core.specs import AutoscalerSpec
from controllers.core.types import Observation, Phase, SetReplicas

HPA_SYNC_PERIOD = 15.0
HPA_TOLERANCE = 0.1
HPA_DOWN_STABILIZATION = 300.0
KEDA_POLL = 5.0
KEDA_GRACE = 600.0


def hpa_rules(spec: AutoscalerSpec, now: float, current: int, raw: int, memory: AutoscalerMemory):
    """Scale-up rate limit, scale-down stabilisation, then [min, max]."""
    recommendations = remember(memory.recommendations, now, raw, HPA_DOWN_STABILIZATION)
    desired = raw
    if desired > current:
        desired = min(desired, max(2 * current, current + 4))
    else:
        desired = stabilized(recommendations, now, HPA_DOWN_STABILIZATION) or desired
        desired = min(desired, current)
    desired = clamp(desired, spec.min_replicas, spec.max_replicas)
    return desired, AutoscalerMemory(None, recommendations)


def _decision(spec, obs, memory, raw: int, load: float | None, reason: str) -> Decision:
    desired, memory = hpa_rules(spec, obs.now, obs.replicas, raw, memory)
    actions = (SetReplicas(desired),) if desired != obs.replicas else ()
    return Decision(memory, actions, desired, load, reason)


def decide_hpa(spec: AutoscalerSpec, obs: Observation, memory: AutoscalerMemory) -> Decision:
    load = fresh_load(obs.cluster_load, obs.now, spec.metric_max_age)
    ready = sum(1 for p in obs.pods if p.live and p.phase == Phase.RUNNING)
    if load is None or ready == 0:
        return Decision(memory, (), obs.replicas, load, "no metric")
    raw = calculate_replicas(ready, load, spec.target, HPA_TOLERANCE)
    if raw == ready:  # within tolerance the HPA keeps the current scale, not the ready count
        raw = obs.replicas
    return _decision(spec, obs, memory, raw, load, "hpa")


def decide_keda(spec: AutoscalerSpec, obs: Observation, memory: AutoscalerMemory) -> Decision:
    if obs.running_tasks is None or obs.queued_tasks is None:
        return Decision(memory, (), obs.replicas, None, "no metric")
    metric = math.ceil((obs.running_tasks + obs.queued_tasks) / max(spec.concurrency, 1))
    current = max(obs.replicas, 1)
    raw = obs.replicas if abs(metric / current - 1.0) <= HPA_TOLERANCE else metric
    return _decision(spec, obs, memory, raw, None, "keda")
