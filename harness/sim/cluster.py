"""The simulated cluster: wires Airflow, the broker, the worker pods, the metrics collector, the two
controllers and the faults into one SimPy environment, records what happens, and runs it.

`simulate(scenario, policy, seed)` is the entry point; it returns a `RunResult` whose four tables
have the columns of `harness.results`, and its summary.
"""

from __future__ import annotations

import math
import random
import time

import pandas as pd
import simpy

from controllers.core.policies import get_policy
from controllers.core.types import DrainStep, Phase
from harness.results import (
    EVENT_COLUMNS,
    TASK_COLUMNS,
    TERMINATION_COLUMNS,
    TIMELINE_COLUMNS,
    RunResult,
    check_expectations,
    summarize,
)
from harness.scenario import Scenario, autoscaler_spec, workerset_spec
from harness.sim.airflow import Airflow
from harness.sim.broker import Broker
from harness.sim.controllers import (
    HOOK_TIMEOUT,
    AutoscalerController,
    ElasticWorkerController,
    Hook,
)
from harness.sim.faults import Faults
from harness.sim.metrics import Collector
from harness.sim.worker import Pod

MAX_TIMELINE_ROWS = 20000
LIVE = (Phase.PENDING, Phase.RUNNING)
DRAINING = (DrainStep.CORDON_REQUESTED, DrainStep.CORDONED)


class CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts the events it processes."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        simpy.Environment.step(self)


class Census:
    """Pod counts as the timeline shows them, updated on every pod change (never by a scan)."""

    def __init__(self) -> None:
        self.live = self.running = self.serving = self.draining = self.terminating = 0
        self.max_live = 0

    def enter(self, pod: Pod) -> None:
        self._count(pod, 1)
        self.max_live = max(self.max_live, self.live)

    def leave(self, pod: Pod) -> None:
        self._count(pod, -1)

    def _count(self, pod: Pod, sign: int) -> None:
        if pod.gone:
            return
        if pod.deleting:
            self.terminating += sign
            return
        if pod.phase not in LIVE:
            return
        self.live += sign
        step = pod.drain.step
        if step in DRAINING:
            self.draining += sign
        if pod.phase is Phase.RUNNING:
            self.running += sign
            if step is DrainStep.SERVING:
                self.serving += sign


class Cluster:
    def __init__(
        self,
        scenario: Scenario,
        policy_name: str,
        seed: int,
        *,
        tables: bool = True,
    ) -> None:
        self.scenario = scenario
        self.policy_name = policy_name
        self.seed = seed
        self.tables = tables
        self.env = CountingEnvironment()
        policy = self.policy = get_policy(policy_name)
        c = scenario.cluster
        self.concurrency = c.worker_concurrency
        self.acks_late = c.acks_late
        self.pod_startup = c.pod_startup
        self.grace = policy.grace if policy.grace is not None else c.termination_grace
        self.sigterm_ignored = policy.sigterm_ignored

        # Running totals that the metrics, the timeline and KEDA's query read.
        self.alive = 0  # workers up
        self.active = 0  # tasks executing
        self.reserved = 0  # tasks prefetched, waiting on a worker

        self.pods: dict[str, Pod] = {}  # owned pods not yet gone, in creation order
        self.all_pods: list[Pod] = []
        self.census = Census()
        self.terminations: list[list] = []
        self.events: list[tuple] = []
        self.timeline: list[tuple] = []

        clock = random.Random(f"{seed}:clock")  # controllers are not in step with each other
        self.broker = Broker(c.prefetch_multiplier * c.worker_concurrency)
        self.airflow = Airflow(self.env, scenario, self.broker, seed)
        self.collector = Collector(self, c.metrics_interval, clock.uniform(0, c.metrics_interval))
        self.faults = Faults(self, list(scenario.faults))
        self.workerset = ElasticWorkerController(
            self, workerset_spec(scenario, policy_name), policy
        )
        ewa = scenario.elasticWorkerAutoscaler
        hook_timeout = float((ewa.get("scaleInSpec") or {}).get("hookTimeoutSeconds", HOOK_TIMEOUT))
        self.hook = Hook(self, c.hook_latency, hook_timeout)
        self.autoscaler_spec = autoscaler_spec(scenario)
        period = policy.sync_period or c.sync_period
        self.autoscaler = AutoscalerController(
            self,
            self.autoscaler_spec,
            policy,
            self.workerset,
            period,
            clock.uniform(0, period),
            self.hook,
        )

    # --- what the parts call -----------------------------------------------------------------

    def create_pod(self, name: str, index: int) -> None:
        if name in self.pods:
            self.event("conflict", name, "pod already exists")
            return
        pod = Pod(self, name, index, dict(self.workerset.spec.labels))
        self.pods[name] = pod
        self.all_pods.append(pod)
        self.census.enter(pod)
        self.workerset_changed()
        self.env.process(pod.lifecycle())
        self.event("create", name, "")

    def forget_pod(self, pod: Pod) -> None:
        del self.pods[pod.name]
        self.workerset_changed()

    def workerset_changed(self) -> None:
        self.workerset.changed()

    def event(self, kind: str, pod: str, detail: str) -> None:
        self.events.append((float(self.env.now), kind, pod, detail))

    # --- the timeline --------------------------------------------------------------------------

    def record(self):
        """One timeline row every step. Without tables the process still ticks, so that the run
        (and its `sim_events`) is the same; only the final row is kept."""
        step = max(1.0, self.scenario.duration / MAX_TIMELINE_ROWS)
        while True:
            if self.tables:
                self.timeline.append(self.snapshot())
            yield self.env.timeout(step)

    def snapshot(self) -> tuple:
        census, reading = self.census, self.collector.cluster_load()
        return (
            float(self.env.now),
            self.workerset.desired,
            census.live,
            census.running,
            census.serving,
            census.draining,
            census.terminating,
            math.nan if reading is None else reading.value,
            self.autoscaler_spec.target,
            len(self.broker.queue),
            self.active,
            self.reserved,
        )

    # --- the run -------------------------------------------------------------------------------

    def start(self) -> None:
        self.workerset.start()
        self.autoscaler.start()
        self.env.process(self.collector.run())
        self.airflow.start()
        self.faults.start()
        self.env.process(self.record())

    def run(self) -> RunResult:
        began = time.perf_counter()
        self.start()
        self.env.run(until=self.scenario.duration)
        return self.result(time.perf_counter() - began)

    def worker_seconds(self) -> float:
        end = self.env.now
        return sum(
            (end if p.released_at is None else p.released_at) - p.created_at for p in self.all_pods
        )

    def result(self, run_seconds: float = 0.0) -> RunResult:
        began = time.perf_counter()
        self.timeline.append(self.snapshot())
        events = self.events if self.tables else [e for e in self.events if e[1] == "scale"]
        result = RunResult(
            scenario=self.scenario.name,
            policy=self.policy_name,
            seed=self.seed,
            mode="sim",
            timeline=pd.DataFrame(self.timeline, columns=list(TIMELINE_COLUMNS)),
            tasks=pd.DataFrame(self.airflow.task_rows(), columns=list(TASK_COLUMNS)),
            terminations=pd.DataFrame(
                [tuple(row) for row in self.terminations], columns=list(TERMINATION_COLUMNS)
            ),
            events=pd.DataFrame(events, columns=list(EVENT_COLUMNS)),
            sim_events=self.env.steps,
            extra={"max_live": self.census.max_live},
        )
        result.wall_seconds = run_seconds + time.perf_counter() - began
        result.summary = summarize(result, self.worker_seconds())
        result.summary["expect_failures"] = check_expectations(self.scenario, result.summary)
        return result


def simulate(
    scenario: Scenario,
    policy: str | None = None,
    seed: int | None = None,
    *,
    tables: bool = True,
) -> RunResult:
    """Run `scenario` for its duration under `policy` (default: the scenario's) with `seed`
    (default: the scenario's). `tables=False` keeps only what the summary needs."""
    cluster = Cluster(
        scenario,
        policy or scenario.policy,
        scenario.seed if seed is None else seed,
        tables=tables,
    )
    return cluster.run()
