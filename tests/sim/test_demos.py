"""The original's demos (PROTOTYPE.md, "Deployment and demo") and the race it lost."""

from __future__ import annotations

import pytest

from tests.sim.helpers import run, scenario


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scale_out_reaches_five_never_more_and_returns_to_two_within_three_minutes(seed):
    result = run("seed-scale-out", "drain", seed)
    tl, tasks = result.timeline, result.tasks
    assert result.summary["max_replicas"] == 5
    assert tl["live"].max() == 5
    assert (tl["live"] + tl["terminating"]).max() <= 5  # no surge while pods terminate

    assert (tasks["outcome"] == "success").sum() == 24  # 12 runs x 2 tasks
    work_ends = tasks["ended_at"].max()
    after = tl[tl["t"] >= work_ends]
    back_at_two = after[(after["live"] == 2) & (after["terminating"] == 0)]["t"].min()
    assert back_at_two - work_ends <= 180
    assert (tl[tl["t"] >= back_at_two]["live"] == 2).all()  # and stays there


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_safe_scale_in_runs_all_twelve_tasks(seed):
    result = run("seed-safe-scale-in", "drain", seed)
    tasks = result.tasks
    assert len(tasks) == 12
    assert (tasks["outcome"] == "success").all()
    assert result.summary["busy_worker_terminations"] == 0
    assert result.summary["scale_events"] >= 2  # it did scale out and back in


def test_safe_scale_in_bursts_arrive_as_in_the_article():
    queued = sorted(run("seed-safe-scale-in").tasks["queued_at"])
    latency = scenario("seed-safe-scale-in").cluster.scheduler_latency
    assert queued == [t + latency for t in [0] * 4 + [40] * 4 + [85] * 4]


def test_race_terminates_busy_workers_under_the_prototype_for_most_seeds():
    hits = [
        run("seed-race", "seed", seed).summary["busy_worker_terminations"] for seed in range(1, 11)
    ]
    assert sum(1 for h in hits if h > 0) >= 6, hits


def test_race_is_lost_by_the_prototype_because_a_task_lands_after_the_idle_snapshot():
    result = run("seed-race", "seed", 1)
    cluster = scenario("seed-race").cluster
    window = cluster.metrics_interval + cluster.hook_latency
    busy = result.terminations[result.terminations["busy"]]
    assert len(busy) > 0
    tasks, events = result.tasks, result.events
    for row in busy.itertuples():
        shutdown = events[(events["kind"] == "shutdown") & (events["pod"] == row.pod)]["t"].max()
        on_pod = tasks[(tasks["worker"] == row.pod) & (tasks["started_at"] <= row.t)]
        started = on_pod["started_at"].max()
        # the task started after the sample that called the worker idle, before the broadcast
        assert shutdown - window <= started <= shutdown
        assert row.ended_by == "SIGKILL"  # PID 1 ignores SIGTERM


def test_race_never_terminates_a_busy_worker_under_drain():
    for seed in range(1, 11):
        summary = run("seed-race", "drain", seed).summary
        assert summary["busy_worker_terminations"] == 0, seed
        assert summary["tasks_killed"] == 0, seed
