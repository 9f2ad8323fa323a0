"""The collector's readings, the timeline and the summary numbers that come from them."""

from __future__ import annotations

import math

import pytest

from controllers.core.types import Phase
from harness.sim import Cluster, simulate
from harness.sim.metrics import Collector
from tests.sim.helpers import make, scenario


@pytest.mark.parametrize("name", ["spike-train", "fault-metrics-stale", "fault-metrics-outage"])
def test_per_pod_readings_are_what_the_latest_sample_saw(name, monkeypatch):
    """The per-pod values are kept lazily; check them against a collector that copies every
    worker's active count at each sample."""
    seen: dict[float, dict[str, int]] = {}
    original = Collector.sample

    def sample(self, now):
        original(self, now)
        seen[now] = {
            p.name: len(p.worker.active) for p in self.cluster.pods.values() if p.worker.up
        }

    monkeypatch.setattr(Collector, "sample", sample)
    sc = scenario(name)
    cluster = Cluster(sc, "drain", 2)
    checks = []

    def inspector():
        while True:
            yield cluster.env.timeout(1.7)
            checks.append((cluster.env.now, cluster.autoscaler.observe()))

    cluster.start()
    cluster.env.process(inspector())
    cluster.env.run(until=min(sc.duration, 900))
    conc = sc.cluster.worker_concurrency
    compared = 0
    for now, obs in checks:
        for view in obs.pods:
            if view.load is None:
                continue
            at = view.load.at
            assert at <= now and at in seen
            active = seen[at][view.name]
            assert view.load.value == math.ceil(100 * active / conc)
            busy_samples = [t for t, pods in seen.items() if t <= at and pods.get(view.name)]
            assert view.last_busy_at == (max(busy_samples) if busy_samples else None)
            compared += 1
        if obs.cluster_load is not None:
            at = obs.cluster_load.at
            alive = len(seen[at])
            assert obs.cluster_load.workers == alive
            if alive:
                total = sum(seen[at].values())
                assert obs.cluster_load.value == math.ceil(100 * total / (alive * conc))
    assert compared > 100
    assert cluster.collector.epoch == len(seen)


def test_readings_age_by_at_most_one_interval_without_faults():
    sc = scenario("spike-train")
    cluster = Cluster(sc, "drain", 1)
    cluster.start()
    cluster.env.run(until=300)
    obs = cluster.autoscaler.observe()
    interval = sc.cluster.metrics_interval
    assert 0 <= obs.now - obs.cluster_load.at < interval
    for view in obs.pods:
        if view.phase is Phase.RUNNING and view.load is not None:
            assert view.load.at == obs.cluster_load.at


def test_no_alive_worker_gives_a_zero_reading_not_a_crash():
    sc = make(
        duration=200,
        workload=[{"at": 0, "dag": "job", "count": 4}],
        faults=[{"at": 0, "kind": "pod_start_failure", "count": 1000}],
    )
    cluster = Cluster(sc, "drain", 1)
    cluster.start()
    cluster.env.run(until=100)
    reading = cluster.collector.cluster_load()
    assert reading is not None and (reading.value, reading.workers) == (0, 0)
    result = cluster.result()
    assert result.summary["tasks_lost"] == 4
    assert result.summary["max_replicas"] == 2  # holds: no worker to measure over


def test_long_runs_sample_the_timeline_but_keep_the_exact_peak():
    sc = make(
        duration=100_000,
        workload=[{"at": 50_000.5, "dag": "job", "count": 8}],
        dags={"job": {"tasks": [{"duration": 30}]}},
    )
    result = simulate(sc)
    tl = result.timeline
    assert len(tl) <= 20_002
    assert tl["t"].diff().dropna().round(6).isin([5.0, 0.0]).all()
    assert result.summary["max_replicas"] >= tl["live"].max()
    assert result.summary["max_replicas"] > 2


def test_worker_seconds_sum_pod_lifetimes():
    sc = make(duration=100)  # two pods for the whole run, nothing else
    assert simulate(sc).summary["worker_seconds"] == pytest.approx(200)


@pytest.mark.parametrize("policy", ["drain", "seed", "keda"])
@pytest.mark.parametrize("name", ["spike-train", "fault-pod-start-failure", "fault-worker-crash"])
def test_timeline_counts_match_a_scan_of_the_pods(name, policy):
    """The timeline's pod counts are kept incrementally; compare them with a full scan."""
    sc = scenario(name)
    cluster = Cluster(sc, policy, 1)
    mismatches = []

    def scan():
        while True:
            yield cluster.env.timeout(0.9)
            pods = list(cluster.pods.values())
            live = [p for p in pods if not p.deleting and p.phase in (Phase.PENDING, Phase.RUNNING)]
            counted = (
                len(live),
                sum(p.phase is Phase.RUNNING for p in live),
                sum(p.deleting for p in pods),
                sum(len(p.worker.active) for p in pods),
                sum(len(p.worker.reserved) for p in pods),
                sum(p.worker.up for p in pods),
            )
            census = cluster.census
            kept = (
                census.live,
                census.running,
                census.terminating,
                cluster.active,
                cluster.reserved,
                cluster.alive,
            )
            if counted != kept:
                mismatches.append((cluster.env.now, counted, kept))

    cluster.start()
    cluster.env.process(scan())
    cluster.env.run(until=sc.duration)
    assert mismatches == []
