"""Every committed scenario holds its expectations under the drain policy, and the drain
invariant holds in all of them: a pod is deleted only when its worker holds no task."""

from __future__ import annotations

import pytest

from harness.results import EVENT_COLUMNS, TASK_COLUMNS, TERMINATION_COLUMNS, TIMELINE_COLUMNS
from harness.scenario import FAULT_KINDS
from tests.sim.helpers import SCENARIO_NAMES, run, scenario

SEEDS = (1, 2, 3)


def test_the_scenarios_cover_the_demos_and_every_fault_kind():
    names = set(SCENARIO_NAMES)
    assert {"seed-scale-out", "seed-safe-scale-in", "seed-race"} <= names
    assert {"diurnal", "spike-train", "long-tasks"} <= names
    for kind in FAULT_KINDS:
        name = "fault-" + kind.replace("_", "-")
        assert name in names
        assert kind in {f.kind for f in scenario(name).faults}, name


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_scenario_is_a_drain_scenario_with_expectations(name):
    sc = scenario(name)
    assert sc.policy == "drain"
    assert sc.expect, "a scenario without expectations checks nothing"
    assert sc.duration <= 2 * 3600


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_expectations_hold_under_drain(name, seed):
    summary = run(name, "drain", seed).summary
    assert summary["expect_failures"] == [], summary


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_drain_deletes_only_workers_without_tasks(name, seed):
    terms = run(name, "drain", seed).terminations
    assert not terms["busy"].any(), terms[terms["busy"]]
    assert (terms["active"] == 0).all() and (terms["reserved"] == 0).all()
    # and none of them was ended by SIGKILL with work on it
    assert run(name, "drain", seed).summary["busy_worker_terminations"] == 0


@pytest.mark.parametrize("name", ["seed-safe-scale-in", "fault-worker-crash"])
def test_tables_have_the_result_columns(name):
    result = run(name)
    assert tuple(result.timeline.columns) == TIMELINE_COLUMNS
    assert tuple(result.tasks.columns) == TASK_COLUMNS
    assert tuple(result.terminations.columns) == TERMINATION_COLUMNS
    assert tuple(result.events.columns) == EVENT_COLUMNS
    assert result.mode == "sim"
    assert result.sim_events > 0
    assert result.extra["max_live"] == result.summary["max_replicas"]
    assert set(result.tasks["outcome"]) <= {"success", "killed", "lost", "running"}
