"""Which worker leaves first.

`drain_candidates` is this project's answer; the other rankings are the peers' (ReplicaSet,
StatefulSet, the prototype's cache order), kept here so that every choice of victim is in one file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from controllers.core.types import DrainStep, Phase, PodView


def is_idle(pod: PodView, now: float, max_age: float) -> bool:
    """Idle by a fresh per-pod `load` of 0. A stale or missing reading is unknown, not idle."""
    return (
        pod.phase == Phase.RUNNING
        and pod.load is not None
        and pod.load.fresh(now, max_age)
        and pod.load.value == 0
    )


def drain_candidates(pods: Iterable[PodView], now: float, max_age: float) -> list[PodView]:
    """Serving pods that may start draining, best victim first.

    Pending pods first (no task can have reached them yet), then idle workers, least recently
    busy first, newest first on ties. Busy and unknown workers are not candidates at all.
    """
    serving = [p for p in pods if p.live and p.drain.step == DrainStep.SERVING]
    pending = sorted(
        (p for p in serving if p.phase == Phase.PENDING), key=lambda p: (-p.created_at, p.name)
    )
    idle = sorted(
        (p for p in serving if is_idle(p, now, max_age)),
        key=lambda p: (
            p.last_busy_at if p.last_busy_at is not None else float("-inf"),
            -p.created_at,
            p.name,
        ),
    )
    return pending + idle


def undo_order(pods: Iterable[PodView]) -> list[PodView]:
    """Draining workers to put back first: the least far along, then those still holding tasks."""
    rank = {DrainStep.CORDON_REQUESTED: 0, DrainStep.CORDONED: 1}
    draining = [p for p in pods if p.live and p.drain.step in rank]

    def holding(p: PodView) -> int:
        report = p.drain.report
        return 0 if report is None or not report.empty else 1

    return sorted(draining, key=lambda p: (rank[p.drain.step], holding(p), p.name))


def replicaset_order(pods: Sequence[PodView]) -> list[PodView]:
    """The ReplicaSet controller's ranking, simplified: pending before running, then newest."""
    return sorted(pods, key=lambda p: (p.phase != Phase.PENDING, -p.created_at, p.name))


def statefulset_order(pods: Sequence[PodView]) -> list[PodView]:
    """A StatefulSet removes the highest ordinal first."""
    return sorted(pods, key=lambda p: -p.index)


def cache_order(pods: Sequence[PodView]) -> list[PodView]:
    """The prototype deleted the last N pods in its informer cache's order."""
    return list(reversed(pods))


RANKINGS = {
    "drain": replicaset_order,  # with `selector` policy only marked pods are deleted anyway
    "replicaset": replicaset_order,
    "statefulset": statefulset_order,
    "cache": cache_order,
}
