"""With autoscaling out of the way the cluster is an M/M/c queue: the mean wait must be Erlang C's.

c workers of concurrency 1 with late ack and prefetch 1 never hold a task they are not running,
so the broker's FIFO queue is the only queue; Poisson arrivals of single-task DAGs, exponential
task times, no scheduler latency, pods that start at once, and min = max = c.
"""

from __future__ import annotations

import math
import statistics

from harness.sim import simulate
from tests.sim.helpers import make


def erlang_c_mean_wait(arrival_rate: float, service_rate: float, servers: int) -> float:
    """Mean time in queue of M/M/c (Erlang C)."""
    a = arrival_rate / service_rate  # offered load, erlangs
    rho = a / servers
    assert rho < 1
    tail = a**servers / math.factorial(servers) / (1 - rho)
    p_wait = tail / (sum(a**k / math.factorial(k) for k in range(servers)) + tail)
    return p_wait / (servers * service_rate - arrival_rate)


def test_erlang_c_formula_itself():
    # M/M/1: Wq = rho / (mu - lambda)
    assert erlang_c_mean_wait(0.5, 1.0, 1) == 1.0
    # a textbook value: lambda 2, mu 1, c 3 -> P(wait) = 4/9, Wq = 4/9
    assert math.isclose(erlang_c_mean_wait(2.0, 1.0, 3), 4 / 9)


def test_mean_wait_matches_erlang_c_for_m_m_c():
    servers, mean_service, utilisation, tasks = 3, 1.0, 0.6, 50_000
    arrival_rate = utilisation * servers / mean_service
    sc = make(
        name="m-m-c",
        duration=tasks / arrival_rate,
        cluster={
            "worker_concurrency": 1,
            "prefetch_multiplier": 1,
            "acks_late": True,
            "pod_startup": 0,
            "scheduler_latency": 0,
        },
        elasticWorker={"minReplicas": servers, "maxReplicas": servers},
        dags={"job": {"tasks": [{"duration": {"exponential": {"mean": mean_service}}}]}},
        workload=[{"poisson": {"rate": arrival_rate}, "dag": "job"}],
    )
    waits, completed = [], 0
    seeds = range(1, 11)  # 500k tasks: the standard error of the mean is about 1.3 %
    for seed in seeds:
        summary = simulate(sc, seed=seed, tables=False).summary
        assert summary["max_replicas"] == servers and summary["scale_events"] == 0
        waits.append(summary["wait_mean"])
        completed += summary["tasks_completed"]
    assert completed > len(seeds) * 0.95 * tasks
    expected = erlang_c_mean_wait(arrival_rate, 1 / mean_service, servers)
    simulated = statistics.mean(waits)
    assert abs(simulated - expected) / expected < 0.05, (simulated, expected, waits)
