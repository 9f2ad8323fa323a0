"""Properties of the drain policy over any sequence of inputs (hypothesis).

A toy world holds the truth (each worker's active and reserved tasks); the controller sees it only
through metrics one step old and through the worker's own reports, as in a real cluster. Tasks
reach serving workers at any moment, including between the idle reading and the cordon.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from controllers.core.decision import AutoscalerMemory
from controllers.core.drain import decide_drain
from controllers.core.specs import AutoscalerSpec, WorkerSetSpec
from controllers.core.types import (
    Cordon,
    DrainRecord,
    DrainStep,
    Mark,
    Observation,
    Phase,
    PodView,
    Reading,
    SetReplicas,
    TaskReport,
    Uncordon,
    Verify,
)
from controllers.core.workerset import plan_workers

MARK = {"delete": "true"}


@dataclass
class Worker:
    name: str
    index: int
    created: float
    running: bool = False
    consuming: bool = True
    active: int = 0
    reserved: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    drain: DrainRecord = field(default_factory=DrainRecord)
    seen_load: Reading | None = None


@dataclass
class World:
    spec: AutoscalerSpec
    workers: dict[str, Worker] = field(default_factory=dict)
    replicas: int = 0
    next_index: int = 0
    now: float = 0.0
    memory: AutoscalerMemory = field(default_factory=AutoscalerMemory)
    cluster_load: Reading | None = None

    def views(self) -> tuple[PodView, ...]:
        return tuple(
            PodView(
                name=w.name,
                phase=Phase.RUNNING if w.running else Phase.PENDING,
                created_at=w.created,
                labels=dict(w.labels),
                index=w.index,
                drain=w.drain,
                load=w.seen_load,
            )
            for w in self.workers.values()
        )

    def observe(self) -> Observation:
        return Observation(self.now, self.views(), self.replicas, self.cluster_load)


def specs(draw) -> AutoscalerSpec:
    lo = draw(st.integers(0, 3))
    hi = draw(st.integers(max(lo, 1), 6))
    return AutoscalerSpec(
        target=draw(st.sampled_from([30, 60, 80, 100])),
        min_replicas=lo,
        max_replicas=hi,
        back_off=draw(st.sampled_from([0, 10, 30])),
        metric_max_age=draw(st.sampled_from([5, 30])),
    )


def apply(world: World, action) -> None:
    if isinstance(action, SetReplicas):
        world.replicas = action.replicas
        return
    w = world.workers[action.pod]
    if isinstance(action, Cordon):
        if not w.running:
            w.drain = DrainRecord(DrainStep.CORDON_REQUESTED, world.now)
            return
        w.consuming = False
        w.drain = DrainRecord(
            DrainStep.CORDONED, world.now, TaskReport(w.active, w.reserved, world.now)
        )
    elif isinstance(action, Verify):
        w.drain = replace(w.drain, report=TaskReport(w.active, w.reserved, world.now))
    elif isinstance(action, Mark):
        w.labels.update(MARK)
        w.drain = DrainRecord(DrainStep.MARKED, world.now)
    elif isinstance(action, Uncordon):
        w.consuming = True
        w.drain = DrainRecord(DrainStep.SERVING, world.now)


def workers_plan(world: World, spec: AutoscalerSpec):
    ws = WorkerSetSpec(
        name="w",
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
        replicas=world.replicas,
        policy="selector",
        policy_selector=MARK,
    )
    return plan_workers(ws, world.views(), world.next_index)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_drain_never_deletes_a_busy_worker_and_stays_in_bounds(data):
    spec = specs(data.draw)
    world = World(spec)
    world.replicas = spec.min_replicas
    for _step in range(data.draw(st.integers(5, 40))):
        world.now += data.draw(st.sampled_from([1, 5, 15, 40]))
        # The world moves: pods start, tasks arrive at consuming workers, tasks finish.
        for w in world.workers.values():
            if not w.running and data.draw(st.booleans()):
                w.running = True
            if w.running and w.consuming and data.draw(st.integers(0, 3)) == 0:
                w.reserved += 1
            if w.reserved and data.draw(st.booleans()):
                w.reserved -= 1
                w.active += 1
            if w.active and data.draw(st.booleans()):
                w.active -= 1
        # Metrics as last sampled: possibly stale, possibly missing.
        if data.draw(st.integers(0, 4)) > 0:
            running = [w for w in world.workers.values() if w.running]
            busy = sum(w.active for w in running)
            cap = 2 * max(len(running), 1)
            world.cluster_load = Reading(100 * busy / cap, world.now, workers=len(running))
            for w in running:
                w.seen_load = Reading(100 * w.active / 2, world.now)

        obs = world.observe()
        decision = decide_drain(spec, obs, world.memory)
        # Idempotent: the same state gives the same decision.
        assert decide_drain(spec, obs, world.memory) == decision
        assert spec.min_replicas <= decision.replicas <= spec.max_replicas
        world.memory = decision.memory
        # A task may land between the decision and its actions (the race window).
        for w in world.workers.values():
            if w.running and w.consuming and data.draw(st.integers(0, 5)) == 0:
                w.reserved += 1
        for action in decision.actions:
            apply(world, action)

        plan = workers_plan(world, spec)
        assert plan == workers_plan(world, spec)
        for name in plan.delete:
            victim = world.workers.pop(name)
            assert victim.active == 0 and victim.reserved == 0, f"busy worker {name} deleted"
        for new in plan.create:
            world.workers[new.name] = Worker(new.name, new.index, world.now)
        world.next_index = plan.next_index
        # Marked pods are on their way out; every other pod is a member, and members never fall
        # short of the desired count, which stays within [min, max].
        members = [w for w in world.workers.values() if w.drain.step != DrainStep.MARKED]
        assert spec.min_replicas <= world.replicas <= spec.max_replicas
        assert len(members) >= world.replicas
