"""Shared helpers for the simulator tests: the committed scenarios, cached runs, small scenarios."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

from harness.results import RunResult
from harness.scenario import Scenario, load_scenario, parse_scenario
from harness.sim import simulate

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
SCENARIO_NAMES = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))


@cache
def scenario(name: str) -> Scenario:
    return load_scenario(SCENARIOS / f"{name}.yaml")


@cache
def run(name: str, policy: str = "drain", seed: int = 1) -> RunResult:
    return simulate(scenario(name), policy, seed)


BASE: dict[str, Any] = {
    "name": "test",
    "duration": 600,
    "policy": "drain",
    "cluster": {
        "worker_concurrency": 2,
        "prefetch_multiplier": 1,
        "acks_late": True,
        "pod_startup": 10,
        "termination_grace": 30,
    },
    "elasticWorker": {
        "minReplicas": 2,
        "maxReplicas": 5,
        "scaleInPolicy": {"name": "selector", "selector": {"matchLabels": {"delete": "true"}}},
    },
    "elasticWorkerAutoscaler": {
        "targetValue": 60,
        "scaleInSpec": {"scaleInBackOff": 30, "markForTerminationLabel": {"delete": "true"}},
    },
    "dags": {"job": {"tasks": [{"duration": 30}]}},
    "workload": [],
}


def make(**changes: Any) -> Scenario:
    """The demo cluster with some keys replaced; `cluster`, `elasticWorker` and
    `elasticWorkerAutoscaler` are merged into the base rather than replaced."""
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        if key in ("cluster", "elasticWorker", "elasticWorkerAutoscaler"):
            data[key].update(value)
        else:
            data[key] = value
    return parse_scenario(data)
