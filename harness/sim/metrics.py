"""The metrics collector: every `metrics_interval` it samples the workers that are up.

- per pod: `load = ceil(100 * active / concurrency)`;
- cluster: `total_cluster_load = ceil(100 * sum(active) / (alive * concurrency))` over the alive
  workers (0 alive gives a reading of 0 over 0 workers, not a crash).

Readings carry their sample time. Faults: `metrics_stale` freezes the published values with their
old timestamps; `metrics_outage` publishes nothing. The collector also keeps each worker's
`last_busy_at`, the last sample time at which its load was above 0.

Per-pod values are kept lazily, so a sample costs O(1) whatever the number of workers: a worker
about to change its active count first saves the count the latest sample saw (`before_change`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from controllers.core.types import PodView, Reading

if TYPE_CHECKING:
    from collections.abc import Iterable

    from harness.sim.cluster import Cluster
    from harness.sim.worker import CeleryWorker, Pod


def percent(part: int, whole: int) -> int:
    """ceil(100 * part / whole) in integers."""
    return -(-100 * part // whole)


class Collector:
    def __init__(self, cluster: Cluster, interval: float, offset: float) -> None:
        self.cluster = cluster
        self.interval = interval
        self.offset = offset
        self.epoch = 0  # one per published sample
        self.sampled_at = -math.inf
        self.total: Reading | None = None
        self.visible = True  # False during an outage
        self.frozen_until = -math.inf
        self.dark_until = -math.inf
        # This epoch's per-pod readings, by active count (0..concurrency).
        self.readings: list[Reading] = []

    def run(self):
        env = self.cluster.env
        yield env.timeout(self.offset)
        while True:
            now = env.now
            if now >= self.dark_until:
                self.visible = True
                if now >= self.frozen_until:
                    self.sample(now)
            yield env.timeout(self.interval)

    def sample(self, now: float) -> None:
        cluster = self.cluster
        self.epoch += 1
        self.sampled_at = now
        conc = cluster.concurrency
        self.readings = [Reading(percent(n, conc), now) for n in range(conc + 1)]
        alive = cluster.alive
        load = percent(cluster.active, alive * cluster.concurrency) if alive else 0
        self.total = Reading(load, now, workers=alive)

    # --- faults --------------------------------------------------------------------------------

    def freeze(self, until: float) -> None:
        """Stale: the last values stay published, with their old timestamps."""
        self.frozen_until = max(self.frozen_until, until)

    def go_dark(self, until: float) -> None:
        """Outage: no readings at all until the first sample after `until`."""
        self.dark_until = max(self.dark_until, until)
        self.visible = False

    # --- what the controllers read -----------------------------------------------------------

    def cluster_load(self) -> Reading | None:
        return self.total if self.visible else None

    def before_change(self, worker: CeleryWorker) -> None:
        """Save what the latest sample saw of this worker before its active count changes."""
        if worker.snap_epoch != self.epoch:
            worker.snap_epoch = self.epoch
            active = len(worker.active)
            worker.snap_active = active
            if active and worker.up_at <= self.sampled_at:
                worker.last_busy_at = self.sampled_at

    def pod_views(self, pods: Iterable[Pod]) -> tuple[PodView, ...]:
        """The pods as the autoscaler sees them, each with its latest per-pod `load` reading (None
        if its worker was not up at that sample, or during an outage) and `last_busy_at`.
        Runs for every pod on every sync, so it is kept flat."""
        at, epoch, readings = self.sampled_at, self.epoch, self.readings
        visible = self.visible
        views = []
        for pod in pods:
            worker = pod.worker
            load = None
            last_busy = worker.last_busy_at
            if worker.up_at <= at < worker.down_at:
                active = worker.snap_active if worker.snap_epoch == epoch else len(worker.active)
                if visible:
                    load = readings[active]
                if active:
                    last_busy = at
            views.append(
                PodView(
                    pod.name,
                    pod.phase,
                    pod.created_at,
                    pod.deleting,
                    pod.labels,
                    pod.index,
                    pod.drain,
                    load,
                    last_busy,
                )
            )
        return tuple(views)
