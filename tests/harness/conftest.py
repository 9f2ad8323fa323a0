"""Fixtures for the command line and report tests: scenario files and fake runs.

`make_result` builds a plausible RunResult whose four tables have exactly the column sets of
`harness.results`; `fake_sim` puts a stand-in for `harness.sim.simulate` in place, so the command
line can be tested without the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from harness.results import (
    EVENT_COLUMNS,
    TASK_COLUMNS,
    TERMINATION_COLUMNS,
    TIMELINE_COLUMNS,
    RunResult,
    check_expectations,
    summarize,
)

TINY: dict[str, Any] = {
    "name": "tiny",
    "description": "four short tasks on a small pool",
    "seed": 7,
    "duration": 300,
    "policy": "drain",
    "cluster": {"worker_concurrency": 2, "pod_startup": 5, "termination_grace": 10},
    "elasticWorker": {
        "minReplicas": 1,
        "maxReplicas": 3,
        "scaleInPolicy": {"name": "selector", "selector": {"matchLabels": {"delete": "true"}}},
    },
    "elasticWorkerAutoscaler": {
        "targetValue": 60,
        "scaleInSpec": {"scaleInBackOff": 30, "markForTerminationLabel": {"delete": "true"}},
    },
    "dags": {"short": {"tasks": [{"duration": 10}]}},
    "workload": [{"at": 0, "dag": "short", "count": 4}],
    "expect": {"busy_worker_terminations": 0, "tasks_lost": 0},
}


def build_result(
    scenario: str = "tiny",
    policy: str = "drain",
    seed: int = 1,
    *,
    busy: int = 0,
    lost: int = 0,
    duration: float = 300.0,
    n_tasks: int = 24,
    n_terminations: int = 3,
    mode: str = "sim",
) -> RunResult:
    """A fake run: a burst that scales out then in, `busy` terminations of busy workers (each
    killing one task), `lost` tasks that never started."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, duration + 1, 5.0)
    burst = (t >= 30) & (t < 150)
    desired = np.where(burst, 3, 1)
    live = np.where((t >= 35) & (t < 165), 3, 1)
    terminating = np.where((t >= 160) & (t < 175), 2, 0)
    load = np.where(burst, 90.0, 20.0) + rng.normal(0, 3, len(t))
    load[:2] = np.nan  # nothing published yet
    active = np.where(burst, 4, 0)
    timeline = pd.DataFrame(
        {
            "t": t,
            "desired": desired,
            "live": live,
            "running": live,
            "serving": np.where((t >= 150) & (t < 165), 1, live),
            "draining": np.where((t >= 150) & (t < 160), 2, 0),
            "terminating": terminating,
            "load": load,
            "target": 60.0,
            "queue_depth": np.where((t >= 30) & (t < 60), 6, 0),
            "active": active,
            "reserved": np.where(burst, 1, 0),
        }
    )[list(TIMELINE_COLUMNS)]

    queued = np.sort(rng.uniform(30, 140, n_tasks))
    started = queued + rng.exponential(4.0, n_tasks)
    ended = started + 10
    outcome = np.array(["success"] * n_tasks, dtype=object)
    outcome[:busy] = "killed"
    tasks = pd.DataFrame(
        {
            "dag": "short",
            "run": [f"run_{i}" for i in range(n_tasks)],
            "task": "t1",
            "try_number": 1,
            "queued_at": queued,
            "started_at": started,
            "ended_at": ended,
            "worker": [f"worker-{i % 3}" for i in range(n_tasks)],
            "outcome": outcome,
        }
    )
    if lost:
        never = pd.DataFrame(
            {
                "dag": "short",
                "run": [f"lost_{i}" for i in range(lost)],
                "task": "t1",
                "try_number": 1,
                "queued_at": 100.0,
                "started_at": np.nan,
                "ended_at": np.nan,
                "worker": "",
                "outcome": "lost",
            }
        )
        tasks = pd.concat([tasks, never], ignore_index=True)
    tasks = tasks[list(TASK_COLUMNS)]

    rows = []
    for i in range(n_terminations + busy):
        is_busy = i >= n_terminations
        rows.append(
            {
                "t": 160.0 + i,
                "pod": f"worker-{policy}-{i}",
                "active": 1 if is_busy else 0,
                "reserved": 1 if is_busy else 0,
                "busy": is_busy,
                "ended_by": "SIGKILL" if is_busy else "exit",
                "ended_at": 161.0 + i,
                "reason": "policy",
            }
        )
    terminations = pd.DataFrame(rows, columns=list(TERMINATION_COLUMNS))

    events = pd.DataFrame(
        [
            {"t": 30.0, "kind": "scale", "pod": "", "detail": "1 -> 3"},
            {"t": 150.0, "kind": "cordon", "pod": "worker-1", "detail": ""},
            {"t": 151.0, "kind": "cordon", "pod": "worker-2", "detail": ""},
            {"t": 158.0, "kind": "mark", "pod": "worker-1", "detail": ""},
            {"t": 150.0, "kind": "scale", "pod": "", "detail": "3 -> 1"},
        ],
        columns=list(EVENT_COLUMNS),
    )
    result = RunResult(
        scenario=scenario,
        policy=policy,
        seed=seed,
        mode=mode,
        timeline=timeline,
        tasks=tasks,
        terminations=terminations,
        events=events,
        sim_events=1234,
        wall_seconds=0.05,
    )
    result.summary = summarize(result, worker_seconds=float(live.sum() * 5))
    result.summary["expect_failures"] = []
    return result


@pytest.fixture
def make_result():
    return build_result


@dataclass
class FakeSim:
    """Stands in for `harness.sim.simulate`: `busy` terminations per policy, calls recorded."""

    busy: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, str, int, bool]] = field(default_factory=list)

    def __call__(self, scenario, policy=None, seed=None, *, tables=True) -> RunResult:
        policy = policy or scenario.policy
        seed = scenario.seed if seed is None else seed
        self.calls.append((scenario.name, policy, seed, tables))
        result = build_result(scenario.name, policy, seed, busy=self.busy.get(policy, 0))
        result.summary["expect_failures"] = check_expectations(scenario, result.summary)
        return result


@pytest.fixture
def fake_sim(monkeypatch) -> FakeSim:
    import harness.sim

    fake = FakeSim()
    monkeypatch.setattr(harness.sim, "simulate", fake, raising=False)
    return fake


@pytest.fixture
def write_scenario(tmp_path):
    """write_scenario(name="tiny", text=None, **top_level_overrides) -> Path of a YAML file."""

    def write(filename: str = "tiny.yaml", text: str | None = None, **overrides: Any) -> Path:
        path = tmp_path / filename
        if text is None:
            data = {**TINY, "name": Path(filename).stem, **overrides}
            text = yaml.safe_dump(data, sort_keys=False)
        path.write_text(text)
        return path

    return write
