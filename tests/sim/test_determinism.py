"""Same scenario, policy and seed: the same run. Another seed: another run."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.sim import simulate
from tests.sim.helpers import scenario


def without_wall(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "wall_seconds"}


@pytest.mark.parametrize("policy", ["drain", "seed", "hpa", "keda"])
def test_same_seed_gives_the_same_run(policy):
    sc = scenario("diurnal")
    first, second = simulate(sc, policy, 7), simulate(sc, policy, 7)
    assert without_wall(first.summary) == without_wall(second.summary)
    pd.testing.assert_frame_equal(first.tasks, second.tasks)
    pd.testing.assert_frame_equal(first.terminations, second.terminations)
    pd.testing.assert_frame_equal(first.timeline, second.timeline)
    pd.testing.assert_frame_equal(first.events, second.events)


@pytest.mark.parametrize("name", ["diurnal", "spike-train", "seed-race"])
def test_another_seed_gives_another_run(name):
    sc = scenario(name)
    assert without_wall(simulate(sc, seed=1).summary) != without_wall(simulate(sc, seed=2).summary)


def test_default_seed_and_policy_are_the_scenarios():
    sc = scenario("spike-train")
    result = simulate(sc)
    assert (result.seed, result.policy) == (sc.seed, sc.policy)
    assert without_wall(result.summary) == without_wall(simulate(sc, sc.policy, sc.seed).summary)


@pytest.mark.parametrize("policy", ["drain", "seed", "hpa", "keda"])
@pytest.mark.parametrize("name", ["seed-race", "fault-worker-crash", "fault-api-conflict"])
def test_summary_without_tables_is_the_same(name, policy):
    sc = scenario(name)
    full, lean = simulate(sc, policy, 3), simulate(sc, policy, 3, tables=False)
    assert without_wall(full.summary) == without_wall(lean.summary)
    assert len(lean.timeline) == 1


def test_every_policy_gets_the_same_work_for_a_seed():
    """Arrivals and durations come from the seed, not from what the cluster did."""
    sc = scenario("diurnal")
    runs = {policy: simulate(sc, policy, 5).tasks for policy in ("drain", "keda")}
    firsts = {}
    for policy, tasks in runs.items():
        first = tasks[(tasks["task"] == "extract") & (tasks["try_number"] == 1)]
        firsts[policy] = first.sort_values("run")["queued_at"].reset_index(drop=True)
    pd.testing.assert_series_equal(firsts["drain"], firsts["keda"])
