"""What one run produces, in the simulator or end to end: the summary and the tables behind it.

The same shape for both modes, so that one report renders either and puts them side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from harness.scenario import Bound, Scenario

# Column sets, so producers and the report agree.
TIMELINE_COLUMNS = (
    "t",  # seconds from the start
    "desired",  # the ElasticWorker's desired replicas
    "live",  # pods Pending or Running, not deleting
    "running",  # pods whose worker consumes or could (Running)
    "serving",  # running, not cordoned
    "draining",  # cordon requested or cordoned, not yet marked
    "terminating",  # deletion requested, not gone yet
    "load",  # total_cluster_load as the collector last published it (NaN when none)
    "target",  # the autoscaler's targetValue
    "queue_depth",  # messages waiting in the broker
    "active",  # tasks executing on workers
    "reserved",  # tasks prefetched by workers, not yet executing
)
TASK_COLUMNS = (
    "dag",
    "run",
    "task",
    "try_number",
    "queued_at",
    "started_at",  # NaN if it never started
    "ended_at",  # NaN if it never ended
    "worker",  # pod name ("" if it never started)
    "outcome",  # success | killed | lost | running (still running at the end)
)
TERMINATION_COLUMNS = (
    "t",  # when the deletion was requested
    "pod",
    "active",  # the worker's active tasks at that moment
    "reserved",  # and its reserved ones
    "busy",  # active + reserved > 0
    "ended_by",  # exit | SIGTERM | SIGKILL (how the process ended)
    "ended_at",
    "reason",  # which decision deleted it (policy, cleanup, crash)
)
EVENT_COLUMNS = (
    "t",
    "kind",  # scale | cordon | verify | mark | uncordon | shutdown | fault | restart | ...
    "pod",  # "" when not about one pod
    "detail",
)


@dataclass
class RunResult:
    scenario: str
    policy: str
    seed: int
    mode: str  # "sim" or "e2e:<cluster>"
    timeline: pd.DataFrame
    tasks: pd.DataFrame
    terminations: pd.DataFrame
    events: pd.DataFrame
    sim_events: int = 0
    wall_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def percentile(values: pd.Series, q: float) -> float:
    return float(values.quantile(q)) if len(values) else 0.0


def summarize(result: RunResult, worker_seconds: float) -> dict[str, Any]:
    """The summary JSON of DESIGN.md (one object per run), without `expect_failures`."""
    tasks, terms, tl = result.tasks, result.terminations, result.timeline
    started = tasks.dropna(subset=["started_at"])
    waits = started["started_at"] - started["queued_at"]
    final_tries = tasks.sort_values("try_number").groupby(["dag", "run", "task"]).tail(1)
    return {
        "scenario": result.scenario,
        "policy": result.policy,
        "seed": result.seed,
        "busy_worker_terminations": int(terms["busy"].sum()) if len(terms) else 0,
        "tasks_killed": int((tasks["outcome"] == "killed").sum()),
        "tasks_lost": int((final_tries["outcome"] != "success").sum()),
        "tasks_completed": int((tasks["outcome"] == "success").sum()),
        "worker_seconds": round(worker_seconds, 1),
        "wait_mean": round(float(waits.mean()), 3) if len(waits) else 0.0,
        "wait_p50": round(percentile(waits, 0.50), 3),
        "wait_p95": round(percentile(waits, 0.95), 3),
        "wait_p99": round(percentile(waits, 0.99), 3),
        # Producers that track the peak exactly give it; a sampled timeline can miss a spike.
        "max_replicas": int(result.extra.get("max_live", tl["live"].max() if len(tl) else 0)),
        "final_replicas": int(tl["live"].iloc[-1]) if len(tl) else 0,
        "scale_events": int((result.events["kind"] == "scale").sum()) if len(result.events) else 0,
        "sim_events": result.sim_events,
        "wall_seconds": round(result.wall_seconds, 3),
    }


def check_expectations(scenario: Scenario, summary: dict[str, Any]) -> list[str]:
    """The `expect` entries that do not hold, one readable line each."""
    failures = []
    for key, want in scenario.expect.items():
        got = summary.get(key)
        if got is None or (isinstance(got, float) and math.isnan(got)):
            failures.append(f"{key}: no value")
            continue
        if isinstance(want, Bound):
            checks = [
                ("le", want.le, got <= (want.le or 0)),
                ("ge", want.ge, got >= (want.ge or 0)),
                ("lt", want.lt, got < (want.lt or 0)),
                ("gt", want.gt, got > (want.gt or 0)),
            ]
            for op, bound, ok in checks:
                if bound is not None and not ok:
                    failures.append(f"{key} = {got}, expected {op} {bound:g}")
        elif got != want:
            failures.append(f"{key} = {got}, expected {want:g}")
    return failures
