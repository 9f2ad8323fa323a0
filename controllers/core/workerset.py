"""The ElasticWorker plan: which pods to create and which to delete.

The controller owns its pods directly (no ReplicaSet). `spec.replicas` is the number of *member*
pods to keep: live pods, less those the scale-in policy has released (with policy `selector`, the
pods that carry its labels). Released pods are deleted; members are deleted only by policy
`immediate`. `spec.scale` is a one-shot delta folded into `spec.replicas`, so two writes add up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from controllers.core.specs import WorkerSetSpec
from controllers.core.types import Phase, PodView
from controllers.core.victims import replicaset_order

Ranking = Callable[[Sequence[PodView]], list[PodView]]


@dataclass(frozen=True)
class NewPod:
    name: str
    index: int


@dataclass(frozen=True)
class WorkerPlan:
    replicas: int  # write back as spec.replicas
    consumed_scale: int  # subtract exactly this from spec.scale, so a concurrent write survives
    create: tuple[NewPod, ...]
    delete: tuple[str, ...]  # live pods to delete (released, or victims of `immediate`)
    cleanup: tuple[str, ...]  # Failed and Succeeded pods, replaced and then removed
    next_index: int
    members: int  # live pods that count toward replicas, before this plan acts
    waiting: int  # surplus members the policy will not delete (`selector` waits for marks)


def resolve_replicas(spec: WorkerSetSpec, fallback: int | None = None) -> int:
    """The desired count: spec.replicas (else the last desired, else min) plus scale, clamped."""
    if spec.replicas is not None:
        base = spec.replicas
    elif fallback is not None:
        base = fallback
    else:
        base = spec.min_replicas
    return spec.clamp(base + spec.scale)


def released(spec: WorkerSetSpec, pod: PodView) -> bool:
    """A pod the scale-in policy has let go of (marked with the policy's labels)."""
    return spec.policy == "selector" and pod.has_labels(spec.policy_selector)


def plan_workers(
    spec: WorkerSetSpec,
    pods: Sequence[PodView],
    next_index: int = 0,
    fallback_replicas: int | None = None,
    ranking: Ranking = replicaset_order,
) -> WorkerPlan:
    replicas = resolve_replicas(spec, fallback_replicas)
    live = [p for p in pods if p.live]
    cleanup = tuple(
        p.name for p in pods if not p.deleting and p.phase in (Phase.FAILED, Phase.SUCCEEDED)
    )
    leaving = [p for p in live if released(spec, p)]
    members = [p for p in live if not released(spec, p)]
    # Indexes only grow, so a new pod never takes the name of one still terminating.
    index = max([next_index, *(p.index + 1 for p in pods)])

    create: list[NewPod] = []
    delete = [p.name for p in leaving]
    waiting = 0
    deficit = replicas - len(members)
    if deficit > 0:
        create = [NewPod(f"{spec.name}-{index + i}", index + i) for i in range(deficit)]
        index += deficit
    elif deficit < 0:
        if spec.policy == "immediate":
            delete += [p.name for p in ranking(members)[:-deficit]]
        else:
            waiting = -deficit
    return WorkerPlan(
        replicas=replicas,
        consumed_scale=spec.scale,
        create=tuple(create),
        delete=tuple(delete),
        cleanup=cleanup,
        next_index=index,
        members=len(members),
        waiting=waiting,
    )
