"""Each fault does what it says, and the drain protocol stays safe through it."""

from __future__ import annotations

import pytest

from harness.sim import simulate
from tests.sim.helpers import make, run, scenario

SEEDS = (1, 2, 3)


def fault(name: str):
    (only,) = [f for f in scenario(name).faults]
    return only


def kinds_between(events, kinds, start, end):
    return events[events["kind"].isin(kinds) & (events["t"] >= start) & (events["t"] < end)]


@pytest.mark.parametrize("seed", SEEDS)
def test_controller_restart_in_the_middle_of_a_drain_and_the_drain_completes(seed):
    result = run("fault-controller-restart", "drain", seed)
    events, tl = result.events, result.timeline
    restart = events[events["kind"] == "restart"]["t"].iloc[0]
    # mid-drain: some pods were cordoned before the restart, others not yet
    assert tl[tl["t"] == restart - 1]["draining"].iloc[0] > 0
    cordons = events[events["kind"] == "cordon"]["t"]
    assert cordons.min() < restart < cordons.max()
    # nothing happens while the controllers are down, the drain resumes afterwards
    assert kinds_between(events, ["cordon", "mark", "scale", "create"], restart, restart + 5).empty
    marked = set(events[events["kind"] == "mark"]["pod"])
    cordoned = set(events[events["kind"] == "cordon"]["pod"])
    assert len(marked) == 10 and marked == cordoned
    assert set(result.terminations["pod"]) == marked
    assert events[(events["kind"] == "mark")]["t"].min() >= restart + 5
    assert result.summary["final_replicas"] == 2


def test_controller_restart_keeps_the_low_load_timer_from_the_status():
    """`low_since` lives in the status: a restart during the back-off does not restart it."""
    base = dict(
        duration=300,
        workload=[{"at": 0, "dag": "job", "count": 8}],
        dags={"job": {"tasks": [{"duration": 40}]}},
    )
    plain = simulate(make(**base), "drain", 1)
    first_in = plain.events[plain.events["detail"].str.startswith("5 -> ")]["t"]
    low_from = first_in.iloc[0] - 30  # the back-off began here
    restarted = simulate(
        make(**base, faults=[{"at": low_from + 20, "kind": "controller_restart"}]), "drain", 1
    )
    again = restarted.events[restarted.events["detail"].str.startswith("5 -> ")]["t"]
    assert again.iloc[0] <= low_from + 30 + 5 + 5  # not a whole new back-off after the restart


@pytest.mark.parametrize("seed", SEEDS)
def test_stale_metrics_stop_the_drain_policy_from_choosing_victims(seed):
    f = fault("fault-metrics-stale")
    result = run("fault-metrics-stale", "drain", seed)
    max_age = 30 + scenario("fault-metrics-stale").cluster.metrics_interval
    tl = result.timeline
    frozen = tl[(tl["t"] > f.at + 3) & (tl["t"] < f.at + f.duration)]
    assert frozen["load"].nunique() == 1 and frozen["active"].nunique() > 1  # really frozen
    assert frozen["load"].iloc[0] < 0.7 * 60  # and low: a frozen value the prototype acts on
    # Once the frozen readings are older than 30 s, the load is unknown: no decision on it.
    stale = kinds_between(result.events, ["cordon", "scale"], f.at + max_age, f.at + f.duration)
    assert stale.empty, stale


def test_stale_metrics_make_the_prototype_shut_down_busy_workers():
    summary = run("fault-metrics-stale", "seed").summary
    assert summary["busy_worker_terminations"] > 0
    assert summary["tasks_killed"] > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_metrics_outage_holds_the_pool(seed):
    f = fault("fault-metrics-outage")
    result = run("fault-metrics-outage", "drain", seed)
    during = kinds_between(result.events, ["cordon", "scale"], f.at + 5, f.at + f.duration)
    assert during.empty, during
    tl = result.timeline
    dark = tl[(tl["t"] > f.at) & (tl["t"] < f.at + f.duration)]
    assert dark["load"].isna().all()
    assert tl[tl["t"] > f.at + f.duration + 5]["load"].notna().all()


@pytest.mark.parametrize("name", ["fault-hook-failure", "fault-hook-timeout"])
def test_no_cordon_lands_while_the_hook_fails(name):
    f = fault(name)
    for seed in SEEDS:
        events = run(name, "drain", seed).events
        errors = events[events["kind"] == "hook_error"]
        assert len(errors) > 0
        assert errors["t"].between(f.at, f.at + f.duration + 10).all()
        landed = kinds_between(events, ["cordon", "uncordon"], f.at + 0.5, f.at + f.duration)
        assert landed.empty


def test_hook_timeouts_take_the_hook_timeout_each():
    errors = run("fault-hook-timeout").events
    errors = errors[errors["kind"] == "hook_error"]["t"]
    assert len(errors) >= 2
    assert (errors.diff().dropna() >= 10 - 1e-9).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_pods_that_fail_to_start_are_replaced_and_removed(seed):
    result = run("fault-pod-start-failure", "drain", seed)
    terms = result.terminations
    cleaned = terms[terms["reason"] == "cleanup"]
    assert len(cleaned) == 3
    assert (cleaned["ended_by"] == "exit").all() and not cleaned["busy"].any()
    assert result.summary["max_replicas"] <= 6


def test_the_prototype_never_removes_failed_pods():
    terms = run("fault-pod-start-failure", "seed").terminations
    assert (terms["reason"] != "cleanup").all()


@pytest.mark.parametrize("policy", ["drain", "seed", "hpa", "keda"])
def test_worker_crash_kills_the_busiest_workers_tasks_without_a_busy_termination(policy):
    result = run("fault-worker-crash", policy, 1)
    tasks = result.tasks
    assert result.summary["tasks_killed"] == 4  # two workers, two running tasks each
    assert result.summary["busy_worker_terminations"] == 0
    killed = tasks[tasks["outcome"] == "killed"]
    assert killed["ended_at"].eq(60).all()
    assert killed["worker"].nunique() == 2
    retried = tasks.merge(killed[["run"]], on="run")
    assert set(retried[retried["try_number"] == 2]["outcome"]) == {"success"}
    if policy != "seed":
        crashed = result.terminations[result.terminations["reason"] == "crash"]
        assert sorted(crashed["pod"]) == sorted(killed["worker"].unique())


@pytest.mark.parametrize("seed", SEEDS)
def test_conflicting_writes_are_retried_on_the_next_sync(seed):
    result = run("fault-api-conflict", "drain", seed)
    events = result.events
    conflicts = events[events["kind"] == "conflict"]
    assert len(conflicts) == 5
    for t in conflicts["t"]:
        later = events[(events["t"] > t) & events["kind"].isin(["scale", "conflict"])]
        assert not later.empty and later["t"].iloc[0] <= t + 5 + 1e-9
    assert result.summary["max_replicas"] >= 5
