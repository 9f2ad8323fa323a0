"""LoadModel: Celery events in, readings out; no broker, no clock."""

from __future__ import annotations

from typing import Any

import pytest

from controllers.core.types import Reading
from controllers.metrics.membership import PrefixMembership, StaticMembership
from controllers.metrics.model import LoadModel, ceil_percent, pod_of


def ev(kind: str, host: str = "celery@pod-a", **fields: Any) -> dict[str, Any]:
    return {"type": kind, "hostname": host, **fields}


def online(model: LoadModel, host: str, t: float = 0.0, **fields: Any) -> None:
    model.apply(ev("worker-online", host, freq=2.0, active=0, **fields), t)


def test_pod_name_is_the_part_after_celery_at() -> None:
    assert pod_of("celery@airflow-worker-0") == "airflow-worker-0"
    assert pod_of("worker@host@x") == "host@x"
    assert pod_of("plain") == "plain"


def test_ceil_percent() -> None:
    assert ceil_percent(1, 3) == 34
    assert ceil_percent(2, 4) == 50
    assert ceil_percent(0, 0) == 0
    assert ceil_percent(3, 2) == 150


def test_received_is_reserved_started_is_active_succeeded_frees() -> None:
    m = LoadModel(default_concurrency=2)
    online(m, "celery@pod-a")
    assert m.apply(ev("task-received", uuid="t1"), 1.0)
    pod = m.snapshot(1.0).pods["pod-a"]
    assert (pod.active, pod.reserved, pod.load) == (0, 1, 0)

    assert m.apply(ev("task-started", uuid="t1"), 1.1)
    snap = m.snapshot(1.1)
    pod = snap.pods["pod-a"]
    assert (pod.active, pod.reserved, pod.load) == (1, 0, 50)
    assert snap.cluster == Reading(50.0, 1.1, workers=1)

    assert m.apply(ev("task-succeeded", uuid="t1"), 1.2)
    pod = m.snapshot(1.2).pods["pod-a"]
    assert (pod.active, pod.reserved, pod.load) == (0, 0, 0)


@pytest.mark.parametrize(
    "done", ["task-failed", "task-revoked", "task-retried", "task-rejected", "task-cancelled"]
)
def test_every_end_of_a_task_frees_its_slot(done: str) -> None:
    m = LoadModel()
    online(m, "celery@pod-a")
    m.apply(ev("task-received", uuid="t1"), 1.0)
    m.apply(ev("task-started", uuid="t1"), 1.0)
    m.apply(ev("task-received", uuid="t2"), 1.0)
    m.apply(ev(done, uuid="t1"), 1.5)
    m.apply(ev("task-revoked", uuid="t2"), 1.5)
    pod = m.snapshot(1.5).pods["pod-a"]
    assert (pod.active, pod.reserved) == (0, 0)


def test_an_event_that_changes_no_number_says_so() -> None:
    m = LoadModel()
    assert m.apply(ev("worker-online", freq=2.0, active=0), 0.0)
    assert not m.apply(ev("worker-heartbeat", freq=2.0, active=0), 2.0)
    assert not m.apply(ev("task-succeeded", uuid="never-seen"), 2.1)
    assert not m.apply(ev("task-sent", uuid="x"), 2.2)
    assert not m.apply({"type": "task-started", "uuid": "x"}, 2.3)  # no hostname


def test_cluster_load_is_over_all_live_workers() -> None:
    m = LoadModel(default_concurrency=2)
    for host in ("celery@pod-a", "celery@pod-b"):
        online(m, host)
    m.apply(ev("task-started", "celery@pod-a", uuid="t1"), 1.0)
    m.apply(ev("task-started", "celery@pod-b", uuid="t2"), 1.0)
    snap = m.snapshot(1.0)
    assert snap.cluster == Reading(50.0, 1.0, workers=2)  # 2 active / (2 workers x 2 slots)
    m.apply(ev("task-started", "celery@pod-b", uuid="t3"), 1.1)
    assert m.snapshot(1.1).cluster.value == 75  # ceil(100 * 3 / 4)


def test_offline_worker_drops_out_with_its_tasks() -> None:
    m = LoadModel()
    online(m, "celery@pod-a")
    online(m, "celery@pod-b")
    m.apply(ev("task-started", "celery@pod-b", uuid="t1"), 1.0)
    assert m.apply(ev("worker-offline", "celery@pod-b"), 1.5)
    snap = m.snapshot(1.5)
    assert set(snap.pods) == {"pod-a"}
    assert snap.cluster == Reading(0.0, 1.5, workers=1)


def test_late_task_event_after_offline_does_not_bring_the_worker_back() -> None:
    m = LoadModel()
    online(m, "celery@pod-a")
    m.apply(ev("worker-offline", "celery@pod-a"), 1.0)
    assert not m.apply(ev("task-succeeded", "celery@pod-a", uuid="t1"), 1.01)
    assert m.snapshot(1.02).cluster.workers == 0
    online(m, "celery@pod-a", t=5.0)  # a restarted worker with the same name is back
    assert m.snapshot(5.0).cluster.workers == 1


def test_zero_workers_is_zero_load_over_zero_capacity() -> None:
    m = LoadModel()
    snap = m.snapshot(10.0)
    assert snap.cluster == Reading(0.0, 10.0, workers=0)
    assert dict(snap.pods) == {}
    assert snap.capacity == 0


def test_missing_heartbeat_means_gone_after_twice_the_interval() -> None:
    m = LoadModel(heartbeat_window=2.0)
    m.apply(ev("worker-online", freq=2.0), 0.0)
    m.apply(ev("task-started", uuid="t1"), 0.5)  # any event is a sign of life
    assert m.alive("celery@pod-a", 4.5)
    assert m.snapshot(4.5).cluster == Reading(50.0, 4.5, workers=1)
    assert not m.alive("celery@pod-a", 4.6)
    assert m.snapshot(4.6).cluster == Reading(0.0, 4.6, workers=0)
    assert m.expire(4.6) == ["celery@pod-a"]
    assert m.hostnames == frozenset()


def test_heartbeat_interval_comes_from_the_worker() -> None:
    m = LoadModel()
    m.apply(ev("worker-online", freq=5.0), 0.0)
    assert m.alive("celery@pod-a", 9.9)
    assert not m.alive("celery@pod-a", 10.1)
    m2 = LoadModel()
    m2.apply(ev("worker-heartbeat"), 0.0)  # no freq: Celery's default 2 s
    assert m2.alive("celery@pod-a", 4.0)
    assert not m2.alive("celery@pod-a", 4.1)


def test_concurrency_from_the_event_else_the_default() -> None:
    m = LoadModel(default_concurrency=2)
    online(m, "celery@pod-a")
    online(m, "celery@pod-b", concurrency=4)
    m.apply(ev("task-started", "celery@pod-b", uuid="t1"), 1.0)
    snap = m.snapshot(1.0)
    assert snap.pods["pod-a"].concurrency == 2
    assert snap.pods["pod-b"].concurrency == 4
    assert snap.pods["pod-b"].load == 25
    assert snap.cluster.value == ceil_percent(1, 6)


def test_per_elasticworker_membership() -> None:
    m = LoadModel()
    for host in ("celery@blue-1", "celery@blue-2", "celery@green-1"):
        online(m, host)
    m.apply(ev("task-started", "celery@green-1", uuid="g"), 1.0)
    m.apply(ev("task-started", "celery@green-1", uuid="h"), 1.0)
    m.apply(ev("task-started", "celery@blue-1", uuid="b"), 1.0)

    blue = m.snapshot(1.0, PrefixMembership("blue-").contains)
    assert set(blue.pods) == {"blue-1", "blue-2"}
    assert blue.cluster == Reading(25.0, 1.0, workers=2)

    green = m.snapshot(1.0, StaticMembership({"green-1", "green-9"}).contains)
    assert set(green.pods) == {"green-1"}
    assert green.cluster == Reading(100.0, 1.0, workers=1)

    nobody = m.snapshot(1.0, StaticMembership(()).contains)
    assert nobody.cluster == Reading(0.0, 1.0, workers=0)


def test_tasks_running_before_the_collector_are_learnt_from_two_heartbeats() -> None:
    m = LoadModel()
    m.apply(ev("worker-heartbeat", freq=2.0, active=2), 0.0)
    assert m.snapshot(0.0).pods["pod-a"].active == 0  # one heartbeat may cross events in flight
    assert m.apply(ev("worker-heartbeat", freq=2.0, active=2), 2.0)
    assert m.snapshot(2.0).pods["pod-a"].active == 2
    # One of them ends: its uuid was never seen, it still frees a slot.
    assert m.apply(ev("task-succeeded", uuid="old-1"), 3.0)
    assert m.snapshot(3.0).pods["pod-a"].active == 1


def test_a_single_crossing_heartbeat_changes_nothing() -> None:
    m = LoadModel()
    online(m, "celery@pod-a")
    m.apply(ev("task-started", uuid="t1"), 1.0)
    # The worker counted t2 before its (batched) task-started arrived.
    assert not m.apply(ev("worker-heartbeat", freq=2.0, active=2), 2.0)
    m.apply(ev("task-started", uuid="t2"), 2.01)
    assert not m.apply(ev("worker-heartbeat", freq=2.0, active=2), 4.0)
    assert m.snapshot(4.0).pods["pod-a"].active == 2


def test_lost_finish_events_are_forgotten_after_two_heartbeats() -> None:
    m = LoadModel()
    online(m, "celery@pod-a")
    m.apply(ev("task-started", uuid="t1"), 1.0)
    m.apply(ev("task-started", uuid="t2"), 1.5)
    m.apply(ev("worker-heartbeat", freq=2.0, active=1), 2.0)
    m.apply(ev("worker-heartbeat", freq=2.0, active=1), 4.0)
    assert m.snapshot(4.0).pods["pod-a"].active == 1
    m.apply(ev("task-succeeded", uuid="t2"), 5.0)  # the newer one was kept
    assert m.snapshot(5.0).pods["pod-a"].active == 0


def test_a_redelivered_task_moves_to_its_new_worker() -> None:
    m = LoadModel()
    online(m, "celery@pod-a")
    online(m, "celery@pod-b")
    m.apply(ev("task-received", "celery@pod-a", uuid="t1"), 1.0)
    m.apply(ev("task-received", "celery@pod-b", uuid="t1"), 2.0)
    m.apply(ev("task-started", "celery@pod-b", uuid="t1"), 2.1)
    snap = m.snapshot(2.1)
    assert snap.pods["pod-a"].reserved == 0
    assert (snap.pods["pod-b"].active, snap.pods["pod-b"].reserved) == (1, 0)


def test_worker_online_again_starts_from_nothing() -> None:
    m = LoadModel()
    online(m, "celery@pod-a")
    m.apply(ev("task-started", uuid="t1"), 1.0)
    assert m.apply(ev("worker-online", freq=2.0, active=0), 2.0)  # restarted in place
    assert m.snapshot(2.0).pods["pod-a"].active == 0


def test_after_a_gap_in_the_stream_reserved_tasks_are_forgotten() -> None:
    m = LoadModel()
    online(m, "celery@pod-a")
    m.apply(ev("task-received", uuid="t1"), 1.0)
    m.apply(ev("task-started", uuid="t2"), 1.0)
    m.forget_reserved()
    pod = m.snapshot(1.0).pods["pod-a"]
    assert (pod.active, pod.reserved) == (1, 0)


def test_bad_concurrency_is_refused() -> None:
    with pytest.raises(ValueError):
        LoadModel(default_concurrency=0)


def test_pool_size_learnt_later_replaces_the_default() -> None:
    m = LoadModel(default_concurrency=1)
    online(m, "celery@pod-a")
    m.apply(ev("task-started", uuid="t1"), 1.0)
    assert m.snapshot(1.0).cluster.value == 100
    assert m.set_concurrency("celery@pod-a", 4)
    assert not m.set_concurrency("celery@pod-a", 4)
    assert not m.set_concurrency("celery@nobody", 4)
    assert m.snapshot(1.0).cluster.value == 25
