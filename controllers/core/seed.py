"""The 2020 prototype, as its code behaves (../shared/PROTOTYPE.md), races included.

Kept as a policy so that the simulator can show what this project fixes. Do not "fix" anything
here: each flaw is a number in a report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from controllers.core.decision import AutoscalerMemory, Decision
from controllers.core.specs import AutoscalerSpec, WorkerSetSpec
from controllers.core.types import Action, Mark, Observation, Phase, PodView, SetScale, Shutdown
from controllers.core.victims import cache_order

SEED_SYNC_PERIOD = 5.0


def decide_seed(spec: AutoscalerSpec, obs: Observation, memory: AutoscalerMemory) -> Decision:
    if obs.cluster_load is None:
        return Decision(memory, (), obs.replicas, None, "metric error: requeue")
    # No freshness check: the prototype's adapter stamped every value "now".
    load = obs.cluster_load.value
    actual = obs.actual_replicas if obs.actual_replicas is not None else obs.replicas
    if load > spec.target:
        new = math.ceil(load * actual / spec.target)
        return Decision(AutoscalerMemory(None), (SetScale(new - actual),), new, load, "scale out")
    if load <= int(0.70 * spec.target) and actual > spec.min_replicas:
        if memory.low_since is None:
            return Decision(AutoscalerMemory(obs.now), (), actual, load, "back-off started")
        if obs.now - memory.low_since < spec.back_off:
            return Decision(memory, (), actual, load, "backing off")
        goal = max(spec.min_replicas, math.ceil(load * actual / spec.target))
        idle = [p.name for p in obs.pods if p.load is not None and p.load.value == 0]
        victims = tuple(idle[: actual - goal])
        if not victims:
            return Decision(memory, (), actual, load, "no idle pod")
        actions: list[Action] = [Shutdown(victims), *(Mark(p) for p in victims)]
        actions.append(SetScale(-len(victims)))
        return Decision(memory, tuple(actions), actual - len(victims), load, "scale in")
    return Decision(AutoscalerMemory(None), (), actual, load, "steady")


@dataclass(frozen=True)
class SeedPlan:
    create: tuple[str, ...]
    delete: tuple[str, ...]
    actual_replicas: int  # the annotation and status.actualReplicas after the plan
    acceptable: int


def plan_seed_workers(
    spec: WorkerSetSpec, pods: Sequence[PodView], actual_annotation: int | None, now: float
) -> SeedPlan:
    """The prototype's ElasticWorker reconcile. `scale` is then overwritten with 0 by the caller."""
    current = [p for p in pods if p.phase in (Phase.PENDING, Phase.RUNNING)]
    baseline = actual_annotation if actual_annotation is not None else spec.min_replicas
    acceptable = max(spec.min_replicas, min(baseline + spec.scale, spec.max_replicas))
    create: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    if len(current) < acceptable:
        stamp = int(now)
        create = tuple(f"{spec.name}-replica-{i}-{stamp}" for i in range(acceptable - len(current)))
    elif len(current) > acceptable:
        n = len(current) - acceptable
        if spec.policy == "immediate":
            delete = tuple(p.name for p in cache_order(current)[:n])
        elif spec.policy == "selector":
            delete = tuple(p.name for p in current if p.has_labels(spec.policy_selector))[:n]
    # Failed and Succeeded pods stay in the count: replacements pile up (PROTOTYPE.md).
    actual = len(pods) + len(create) - len(delete)
    return SeedPlan(create, delete, actual, acceptable)
