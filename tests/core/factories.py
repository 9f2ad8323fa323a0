"""Small builders for core inputs, so tests read like the situation they set up."""

from __future__ import annotations

from controllers.core.specs import AutoscalerSpec, WorkerSetSpec
from controllers.core.types import (
    DrainRecord,
    DrainStep,
    Observation,
    Phase,
    PodView,
    Reading,
    TaskReport,
)

# The prototype's demo numbers.
DEMO = AutoscalerSpec(target=60, min_replicas=2, max_replicas=5, back_off=30, concurrency=2)
DEMO_SET = WorkerSetSpec(
    name="w",
    min_replicas=2,
    max_replicas=5,
    policy="selector",
    policy_selector={"delete": "true"},
)


def pod(
    name: str,
    *,
    phase: Phase = Phase.RUNNING,
    load: float | None = 0,
    load_at: float = 100.0,
    created: float = 0.0,
    step: DrainStep = DrainStep.SERVING,
    since: float | None = None,
    report: tuple[int, int, float] | None = None,
    labels: dict[str, str] | None = None,
    deleting: bool = False,
    index: int = 0,
    last_busy: float | None = None,
) -> PodView:
    return PodView(
        name=name,
        phase=phase,
        created_at=created,
        deleting=deleting,
        labels=labels or {},
        index=index,
        drain=DrainRecord(step, since, TaskReport(*report) if report else None),
        load=None if load is None else Reading(load, load_at),
        last_busy_at=last_busy,
    )


def observe(
    pods: list[PodView], replicas: int, load: float | None, *, now: float = 100.0, at=None
) -> Observation:
    reading = None
    if load is not None:
        running = sum(1 for p in pods if p.live and p.phase == Phase.RUNNING)
        reading = Reading(load, now if at is None else at, workers=running)
    return Observation(now=now, pods=tuple(pods), replicas=replicas, cluster_load=reading)
