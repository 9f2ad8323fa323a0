"""This project's autoscaler decision: the drain protocol (DESIGN.md, "The drain protocol").

A worker leaves the pool only through choose -> cordon -> verify -> mark; the ElasticWorker then
deletes marked pods only. Each step is recorded on the pod before it is acted on, and this function
reads the steps back from the pods on every sync, so a restarted controller resumes where it was.

Invariant: `Mark` is returned only for a worker whose own report, taken after its consumer was
cancelled, shows no active and no reserved task.
"""

from __future__ import annotations

from controllers.core.decision import AutoscalerMemory, Decision
from controllers.core.replicas import calculate_replicas, clamp, remember, stabilized
from controllers.core.scale_in import fresh_load, judge_load
from controllers.core.specs import AutoscalerSpec
from controllers.core.types import (
    Action,
    Cordon,
    DrainStep,
    Mark,
    Observation,
    Phase,
    PodView,
    SetReplicas,
    Uncordon,
    Verify,
)
from controllers.core.victims import drain_candidates, undo_order

DRAINING = (DrainStep.CORDON_REQUESTED, DrainStep.CORDONED)


def verified_idle(pod: PodView) -> bool:
    """The worker said 'no active, no reserved' after its cordon was acknowledged."""
    record = pod.drain
    return (
        record.step == DrainStep.CORDONED
        and record.since is not None
        and record.report is not None
        and record.report.at >= record.since
        and record.report.empty
    )


def serving_load(
    load: float, measured: int, pods: tuple[PodView, ...], now: float, max_age: float
) -> tuple[int, float]:
    """The load of the serving workers alone: (how many, their load).

    The cluster load is measured over every live worker, draining ones included. Their tasks
    will finish without new capacity, and they take no new task, so counting them would scale
    straight back out after a scale-in. A draining worker whose own load is unknown is taken
    as idle, which leans towards scaling out: slower to save, never slower to serve.
    """
    leaving = [
        p
        for p in pods
        if p.phase == Phase.RUNNING
        and (p.deleting or p.drain.step not in (DrainStep.SERVING, DrainStep.UNCORDON_REQUESTED))
    ]
    leaving_busy = sum(p.load.value for p in leaving if p.load and p.load.fresh(now, max_age))
    busy = max(load * measured - leaving_busy, 0.0)
    serving = max(measured - len(leaving), 0)
    if serving == 0:
        return 0, busy
    return serving, busy / serving


def desired_replicas(
    spec: AutoscalerSpec, obs: Observation, memory: AutoscalerMemory
) -> tuple[int, AutoscalerMemory, float | None, str]:
    """The replica count to aim for, and the updated memory."""
    current = clamp(obs.replicas, spec.min_replicas, spec.max_replicas)
    cluster_load = fresh_load(obs.cluster_load, obs.now, spec.metric_max_age)
    if cluster_load is None:
        return current, memory, None, "load unknown (missing or stale): holding"
    assert obs.cluster_load is not None
    measured = obs.cluster_load.workers
    if measured is None:
        measured = sum(1 for p in obs.pods if p.live and p.phase == Phase.RUNNING)
    if measured == 0:
        return current, memory, cluster_load, "no running worker to measure: holding"

    serving, load = serving_load(cluster_load, measured, obs.pods, obs.now, spec.metric_max_age)
    if serving == 0:
        # Every measured worker is leaving: `load` is their busy sum, owed to nobody serving.
        raw = 0 if load == 0 else calculate_replicas(1, load, spec.target)
    else:
        raw = calculate_replicas(serving, load, spec.target, spec.tolerance)
    recommended = clamp(raw, spec.min_replicas, spec.max_replicas)
    recommendations = memory.recommendations
    if spec.stabilization > 0:
        recommendations = remember(recommendations, obs.now, recommended, spec.stabilization)
    if recommended > current:
        return recommended, AutoscalerMemory(None, recommendations), load, "load above target"

    verdict = judge_load(load, memory.low_since, obs.now, spec.scale_in_below, spec.back_off)
    if spec.stabilization > 0:
        held = stabilized(recommendations, obs.now, spec.stabilization)
        recommended = max(recommended, held or 0)
    if verdict.scale_in_due and recommended < current:
        # The timer restarts: the next scale-in waits for low load under the new pool.
        return recommended, AutoscalerMemory(obs.now, recommendations), load, "low load held"
    return current, AutoscalerMemory(verdict.low_since, recommendations), load, "steady"


def decide_drain(spec: AutoscalerSpec, obs: Observation, memory: AutoscalerMemory) -> Decision:
    replicas, memory, load, reason = desired_replicas(spec, obs, memory)
    actions: list[Action] = []
    if replicas != obs.replicas:
        actions.append(SetReplicas(replicas))

    members = [p for p in obs.pods if p.live and p.drain.step != DrainStep.MARKED]
    draining = [p for p in members if p.drain.step in DRAINING]
    surplus = len(members) - replicas

    # Undo before anything new: a cordoned worker is put back before a new pod is created,
    # which holds because draining workers still count toward replicas.
    excess_draining = len(draining) - max(surplus, 0)
    undone = {p.name for p in undo_order(draining)[: max(excess_draining, 0)]}
    actions += [Uncordon(name) for name in sorted(undone)]
    actions += [Uncordon(p.name) for p in members if p.drain.step == DrainStep.UNCORDON_REQUESTED]

    for pod in draining:
        if pod.name in undone:
            continue
        if pod.drain.step == DrainStep.CORDON_REQUESTED:
            actions.append(Cordon(pod.name))  # the request may not have landed: ask again
        elif verified_idle(pod):
            actions.append(Mark(pod.name))
        else:
            actions.append(Verify(pod.name))

    if excess_draining < 0:
        chosen = drain_candidates(members, obs.now, spec.metric_max_age)[:-excess_draining]
        actions += [Cordon(p.name) for p in chosen]
    return Decision(memory, tuple(actions), replicas, load, reason)
