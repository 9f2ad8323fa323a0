"""The broker and the Celery workers: prefetch, early and late ack, cordon (Celery issue 2564),
warm shutdown and SIGKILL."""

from __future__ import annotations

import random

import pytest

from controllers.core.types import DrainStep
from harness.sim import Cluster
from tests.sim.helpers import make, run


def started_cluster(until: float = 1.0, **changes) -> Cluster:
    cluster = Cluster(make(**changes), "drain", 1)
    cluster.start()
    cluster.env.run(until=until)
    return cluster


def fixed_pool(n: int, **cluster_changes):
    return {
        "cluster": {"pod_startup": 0, "scheduler_latency": 0, **cluster_changes},
        "elasticWorker": {"minReplicas": n, "maxReplicas": n},
    }


def trigger(cluster: Cluster, dag: str = "job", count: int = 1) -> None:
    for _ in range(count):
        cluster.airflow.trigger(dag, random.Random(0))


def test_late_ack_counts_active_tasks_against_the_prefetch():
    # prefetch = 1 x concurrency 2: a worker never holds a task it is not running
    timeline = run("seed-scale-out").timeline
    assert timeline["queue_depth"].max() > 0
    assert (timeline["reserved"] == 0).all()


def test_early_ack_lets_a_busy_worker_reserve_more():
    cluster = started_cluster(**fixed_pool(1, worker_concurrency=2, acks_late=False))
    trigger(cluster, count=6)
    cluster.env.run(until=2)
    worker = next(iter(cluster.pods.values())).worker
    # 2 running (acked), 2 prefetched (unacked), 2 left in the queue
    assert (len(worker.active), len(worker.reserved), worker.unacked) == (2, 2, 2)
    assert len(cluster.broker.queue) == 2


def test_delivery_is_round_robin_among_workers_with_room():
    cluster = started_cluster(**fixed_pool(4, worker_concurrency=1))
    trigger(cluster, count=4)
    cluster.env.run(until=2)
    assert [len(p.worker.active) for p in cluster.pods.values()] == [1, 1, 1, 1]


def test_unlimited_prefetch_pushes_every_message_out():
    cluster = started_cluster(**fixed_pool(2, worker_concurrency=1, prefetch_multiplier=0))
    trigger(cluster, count=7)
    cluster.env.run(until=2)
    held = sorted(len(p.worker.active) + len(p.worker.reserved) for p in cluster.pods.values())
    assert held == [3, 4] and not cluster.broker.queue


def test_cordoned_worker_runs_its_reserved_task_and_is_marked_only_after_it():
    """Celery 2564: messages prefetched before cancel_consumer stay on the worker and run there.
    Two idle workers, target 100: the pool shrinks to one. A slow hook (10 s) leaves a window in
    which two tasks reach the chosen worker (one runs, one is prefetched) before its cordon lands.
    """
    sc = make(
        duration=400,
        cluster={
            "worker_concurrency": 1,
            "prefetch_multiplier": 2,
            "pod_startup": 0,
            "scheduler_latency": 0,
            "hook_latency": 10,
        },
        elasticWorker={"minReplicas": 1, "maxReplicas": 2, "replicas": 2},
        elasticWorkerAutoscaler={"targetValue": 100},
        dags={"job": {"tasks": [{"duration": 40}]}},
    )
    cluster = Cluster(sc, "drain", 1)
    cluster.start()
    env = cluster.env

    def requested():
        return [p for p in cluster.pods.values() if p.drain.step == DrainStep.CORDON_REQUESTED]

    while not requested():
        env.step()
    chosen = requested()[0]
    other = next(p for p in cluster.pods.values() if p is not chosen)
    # The broker happens to hand both new tasks to the chosen worker.
    other.worker.cancel_consumer()
    trigger(cluster, count=2)
    env.run(until=env.now + 0.5)
    other.worker.add_consumer()
    assert (len(chosen.worker.active), len(chosen.worker.reserved)) == (1, 1)

    env.run(until=sc.duration)
    result = cluster.result()
    events, tasks = result.events, result.tasks
    cordon = events[(events["kind"] == "cordon") & (events["pod"] == chosen.name)]
    assert list(cordon["detail"]) == ["active=1 reserved=1"]
    on_chosen = tasks[tasks["worker"] == chosen.name].sort_values("started_at")
    assert list(on_chosen["outcome"]) == ["success", "success"]
    reserved_task = on_chosen.iloc[1]
    assert reserved_task["started_at"] > cordon["t"].iloc[0]  # it ran there after the cordon
    mark = events[(events["kind"] == "mark") & (events["pod"] == chosen.name)]["t"]
    assert len(mark) == 1 and mark.iloc[0] >= reserved_task["ended_at"]
    term = result.terminations.set_index("pod").loc[chosen.name]
    assert not term["busy"] and term["ended_by"] == "SIGTERM"
    assert result.summary["tasks_lost"] == 0


def test_warm_shutdown_finishes_active_tasks_and_requeues_reserved_ones_first():
    # Pods take 50 s to start, so the replacement of the deleted pod does not consume before 100.
    changes = fixed_pool(2, worker_concurrency=1, acks_late=False, pod_startup=50)
    cluster = started_cluster(51, **changes, dags={"job": {"tasks": [{"duration": 20}]}})
    first, second = cluster.pods.values()
    second.worker.cancel_consumer()
    trigger(cluster, count=4)  # first: one running, one reserved; two wait in the queue
    cluster.env.run(until=51.5)
    assert (len(first.worker.active), len(first.worker.reserved)) == (1, 1)
    held = first.worker.reserved[0]
    queued = list(cluster.broker.queue)
    first.delete("test")  # SIGTERM: warm shutdown
    cluster.env.run(until=80)
    assert first.termination[2:5] == [1, 1, True]  # active, reserved, busy when deleted
    assert first.termination[5] == "SIGTERM" and first.termination[6] == pytest.approx(71.0)
    assert list(cluster.broker.queue) == [held, *queued]  # back at the front, in order
    second.worker.add_consumer()
    cluster.env.run(until=300)
    assert held.worker == second.name and held.started_at == pytest.approx(80.0)
    assert [ti.outcome for ti in (held, *queued)] == ["success"] * 3


def test_sigkill_after_the_grace_kills_the_running_task_and_the_scheduler_retries_it():
    changes = fixed_pool(2, worker_concurrency=1, task_retries=1)
    cluster = started_cluster(**changes, dags={"job": {"tasks": [{"duration": 100}]}})
    first = next(iter(cluster.pods.values()))
    trigger(cluster)
    cluster.env.run(until=2)
    assert len(first.worker.active) == 1
    first.delete("test")
    cluster.env.run(until=400)
    result = cluster.result()
    tries = result.tasks.sort_values("try_number")
    assert list(tries["outcome"]) == ["killed", "success"]
    assert tries.iloc[0]["ended_at"] == pytest.approx(32)  # deleted at 2, grace 30
    assert first.termination[5] == "SIGKILL"
    assert result.summary["tasks_killed"] == 1 and result.summary["tasks_lost"] == 0


def test_a_killed_task_without_retries_loses_the_rest_of_its_run():
    dags = {"two": {"tasks": [{"duration": 100}, {"duration": 10}]}}
    cluster = started_cluster(**fixed_pool(1, worker_concurrency=1), dags=dags)
    trigger(cluster, "two")
    cluster.env.run(until=2)
    next(iter(cluster.pods.values())).delete("test")
    cluster.env.run(until=600)
    result = cluster.result()
    assert list(result.tasks["outcome"]) == ["killed", "lost"]
    assert result.summary["tasks_lost"] == 2


def test_prototype_pods_ignore_sigterm_and_die_by_sigkill_after_the_grace():
    result = run("seed-safe-scale-in", "seed")
    terms = result.terminations
    assert len(terms) > 0
    assert (terms["ended_by"] == "SIGKILL").all()
    assert ((terms["ended_at"] - terms["t"]) == 30).all()
