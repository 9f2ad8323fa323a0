"""Airflow: DAG runs arrive, the scheduler queues their tasks in order, killed tasks are retried.

A DAG run's tasks run in sequence. The scheduler sends a task to the broker
`scheduler_latency` seconds after it became ready (the run was created, or its predecessor
succeeded). A try killed on its worker is retried as a new try while `task_retries` allow;
otherwise the task and the rest of its run are lost.

Task durations are drawn when the run is triggered, from the random stream of its workload entry,
so every policy sees the same work for the same seed (a retry runs the same task again).
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

from harness.scenario import Burst, Poisson, Scenario, Trace, arrival_times, sample_duration

if TYPE_CHECKING:
    import simpy

    from harness.sim.broker import Broker

SUCCESS = "success"
KILLED = "killed"
RUNNING = "running"
LOST = "lost"
NAN = math.nan


class TaskTry:
    """One try of one task instance: the broker message and, at the end, one tasks-table row."""

    __slots__ = (
        "done",
        "duration",
        "ended_at",
        "outcome",
        "queued_at",
        "run",
        "started_at",
        "task",
        "try_number",
        "worker",
    )

    def __init__(self, run: DagRun, task: int, try_number: int, now: float, done) -> None:
        self.run = run
        self.task = task
        self.try_number = try_number
        self.duration = run.durations[task]
        self.queued_at = now
        self.started_at = NAN
        self.ended_at = NAN
        self.worker = ""
        self.outcome: str | None = None  # None while queued (in the broker or reserved)
        self.done = done  # succeeds with SUCCESS or KILLED

    def row(self) -> tuple:
        run = self.run
        outcome = self.outcome or LOST
        return (
            run.dag,
            run.number,
            run.names[self.task],
            self.try_number,
            self.queued_at,
            self.started_at,
            self.ended_at,
            self.worker,
            outcome,
        )


class DagRun:
    __slots__ = ("dag", "durations", "names", "number", "queued")

    def __init__(self, dag: str, number: int, names: tuple[str, ...], durations: list[float]):
        self.dag = dag
        self.number = number
        self.names = names
        self.durations = durations
        self.queued = 0  # how many of its tasks have been queued at least once


class Airflow:
    """The scheduler and the metadata database's task instances."""

    def __init__(
        self,
        env: simpy.Environment,
        scenario: Scenario,
        broker: Broker,
        seed: int,
    ) -> None:
        self.env = env
        self.scenario = scenario
        self.broker = broker
        self.seed = seed
        self.latency = scenario.cluster.scheduler_latency
        self.retries = scenario.cluster.task_retries
        self.names = {
            name: tuple(t.name or f"task_{i + 1}" for i, t in enumerate(dag.tasks))
            for name, dag in scenario.dags.items()
        }
        self.run_numbers = dict.fromkeys(scenario.dags, 0)
        self.runs: list[DagRun] = []
        self.tries: list[TaskTry] = []

    def start(self) -> None:
        for index, entry in enumerate(self.scenario.workload):
            self.env.process(self.arrivals(entry, index))

    # --- processes ---------------------------------------------------------------------------

    def arrivals(self, entry: Burst | Poisson | Trace, index: int):
        """Trigger the entry's DAG runs at their times."""
        rng = random.Random(f"{self.seed}:workload:{index}")
        for at in arrival_times(self.scenario, index, rng):
            if at >= self.scenario.duration:
                return
            if at > self.env.now:
                yield self.env.timeout(at - self.env.now)
            self.trigger(entry.dag, rng)

    def dag_run(self, run: DagRun):
        """One DAG run: its tasks in sequence, each retried while retries allow."""
        for task in range(len(run.durations)):
            for try_number in range(1, self.retries + 2):
                if self.latency:
                    yield self.env.timeout(self.latency)
                ti = self.queue(run, task, try_number)
                if (yield ti.done) == SUCCESS:
                    break
            else:
                return  # out of retries: the task and the rest of its run are lost

    # --- what the processes do -----------------------------------------------------------------

    def trigger(self, dag: str, rng: random.Random) -> None:
        self.run_numbers[dag] += 1
        tasks = self.scenario.dags[dag].tasks
        durations = [sample_duration(t.duration, rng) for t in tasks]
        run = DagRun(dag, self.run_numbers[dag], self.names[dag], durations)
        self.runs.append(run)
        self.env.process(self.dag_run(run))

    def queue(self, run: DagRun, task: int, try_number: int) -> TaskTry:
        ti = TaskTry(run, task, try_number, self.env.now, self.env.event())
        run.queued = max(run.queued, task + 1)
        self.tries.append(ti)
        self.broker.publish(ti)
        return ti

    def started(self, ti: TaskTry, worker: str) -> None:
        ti.started_at = self.env.now
        ti.worker = worker
        ti.outcome = RUNNING

    def succeeded(self, ti: TaskTry) -> None:
        ti.ended_at = self.env.now
        ti.outcome = SUCCESS
        ti.done.succeed(SUCCESS)

    def killed_on_worker(self, ti: TaskTry) -> None:
        """The worker died under the task. Its redelivered message, if any, is dropped: Airflow
        does not run a task instance that is no longer queued; the scheduler retries instead."""
        ti.ended_at = self.env.now
        ti.outcome = KILLED
        ti.done.succeed(KILLED)

    # --- counts and rows -----------------------------------------------------------------------

    def task_rows(self) -> list[tuple]:
        """Every try, then one `lost` row for each task of a run that was never queued."""
        rows = [ti.row() for ti in self.tries]
        for run in self.runs:
            for task in range(run.queued, len(run.durations)):
                rows.append((run.dag, run.number, run.names[task], 1, NAN, NAN, NAN, "", LOST))
        return rows
