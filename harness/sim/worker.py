"""A worker pod and the Celery worker inside it.

Pod phases: Pending (for `pod_startup`) -> Running (the worker consumes) -> gone when deleted, or
Failed (start-up failure, crash). Deleting a Running pod sends SIGTERM: Celery's warm shutdown
(stop consuming, finish the active tasks, close the channel so that reserved messages go back to
the queue, exit). SIGKILL follows after the grace and kills what still runs. The prototype's pods
ignore SIGTERM (PID 1 is bash): their deletion always ends in SIGKILL after the grace.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

from controllers.core.types import DrainRecord, Phase, PodView
from harness.sim.airflow import RUNNING

if TYPE_CHECKING:
    from harness.sim.airflow import TaskTry
    from harness.sim.cluster import Cluster

NAN = math.nan


class CeleryWorker:
    """`concurrency` slots; active tasks run, reserved (prefetched) ones wait for a slot."""

    __slots__ = (
        "active",
        "closing",
        "cluster",
        "concurrency",
        "consuming",
        "down_at",
        "exited",
        "in_ready",
        "last_busy_at",
        "name",
        "reserved",
        "snap_active",
        "snap_epoch",
        "unacked",
        "up",
        "up_at",
    )

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.concurrency = cluster.concurrency
        self.active: dict[TaskTry, None] = {}  # a dict keeps the order; a set would not
        self.reserved: deque[TaskTry] = deque()
        self.unacked = 0  # broker side: delivered, not yet acked
        self.consuming = False
        self.in_ready = False
        self.closing = False  # warm shutdown: no new task starts
        self.up = False
        self.up_at = math.inf
        self.down_at = math.inf
        self.exited = cluster.env.event()
        # The collector's view, kept lazily (see metrics.py).
        self.snap_epoch = -1
        self.snap_active = 0
        self.last_busy_at: float | None = None

    # --- the process -------------------------------------------------------------------------

    def boot(self) -> None:
        self.up = True
        self.up_at = self.cluster.env.now
        self.cluster.alive += 1
        self.cluster.broker.consume(self)

    def receive(self, ti: TaskTry) -> None:
        """A message delivered by the broker."""
        if not self.closing and len(self.active) < self.concurrency:
            self.execute(ti)
        else:
            self.reserved.append(ti)
            self.cluster.reserved += 1

    def execute(self, ti: TaskTry) -> None:
        cluster = self.cluster
        cluster.collector.before_change(self)
        self.active[ti] = None
        cluster.active += 1
        cluster.airflow.started(ti, self.name)
        cluster.env.timeout(ti.duration, ti).callbacks.append(self.finished)
        if not cluster.acks_late:
            cluster.broker.ack(self)

    def finished(self, event) -> None:
        ti: TaskTry = event.value
        if ti.outcome is not RUNNING:
            return  # killed meanwhile
        cluster = self.cluster
        cluster.collector.before_change(self)
        del self.active[ti]
        cluster.active -= 1
        cluster.airflow.succeeded(ti)
        self.start_reserved()  # before the ack, so that older reserved tasks go first
        if cluster.acks_late:
            cluster.broker.ack(self)
        if self.closing and not self.active:
            self.close()

    def start_reserved(self) -> None:
        while self.reserved and not self.closing and len(self.active) < self.concurrency:
            self.cluster.reserved -= 1
            self.execute(self.reserved.popleft())

    # --- remote control ----------------------------------------------------------------------

    def cancel_consumer(self) -> None:
        """Cordon: no new deliveries. Reserved messages stay here and still run (Celery 2564)."""
        self.cluster.broker.cancel(self)

    def add_consumer(self) -> None:
        if self.up and not self.closing:
            self.cluster.broker.consume(self)

    def warm_shutdown(self) -> None:
        """SIGTERM or Flower's shutdown broadcast: finish active tasks, then close and exit."""
        if not self.up:
            return
        self.closing = True
        self.cluster.broker.cancel(self)
        if not self.active:
            self.close()

    def close(self) -> None:
        """The channel closes (unacked reserved messages go back to the queue) and the process
        exits."""
        if not self.up:
            return
        cluster = self.cluster
        self.up = False
        self.down_at = cluster.env.now
        cluster.alive -= 1
        cluster.broker.cancel(self)
        self.unacked = 0
        if self.reserved:
            cluster.reserved -= len(self.reserved)
            cluster.broker.requeue(self.reserved)
            self.reserved.clear()
        self.exited.succeed()

    def kill(self) -> None:
        """SIGKILL or a crash: active tasks die with the process."""
        if not self.up:
            return
        cluster = self.cluster
        if self.active:
            cluster.collector.before_change(self)
            killed = list(self.active)
            self.active.clear()
            cluster.active -= len(killed)
            for ti in killed:
                cluster.airflow.killed_on_worker(ti)
        self.close()


class Pod:
    """One worker pod owned by the ElasticWorker."""

    __slots__ = (
        "cluster",
        "created_at",
        "deleting",
        "drain",
        "failure",
        "gone",
        "index",
        "labels",
        "name",
        "phase",
        "released_at",
        "sigterm",
        "termination",
        "worker",
    )

    def __init__(self, cluster: Cluster, name: str, index: int, labels: dict[str, str]) -> None:
        self.cluster = cluster
        self.name = name
        self.index = index
        self.created_at = cluster.env.now
        self.phase = Phase.PENDING
        self.deleting = False
        self.gone = False
        self.labels = labels
        self.drain = DrainRecord()
        self.worker = CeleryWorker(cluster, name)
        self.sigterm = cluster.env.event()
        self.termination: list | None = None  # its terminations-table row, once deleted
        self.failure = ""  # why it went Failed
        self.released_at: float | None = None  # when it stopped holding a node's resources

    def lifecycle(self):
        """Pending for `pod_startup` (unless deleted first), then Running with its worker up, or
        Failed; it stays until deleted, then terminates and is gone."""
        env = self.cluster.env
        yield env.timeout(self.cluster.pod_startup) | self.sigterm
        if not self.deleting:
            if self.cluster.faults.take_start_failure():
                self.fail("cleanup")  # the reason its removal will give
            else:
                self.update(phase=Phase.RUNNING)
                self.worker.boot()
            yield self.sigterm
        ended_by = yield from self.terminate()
        self.remove(ended_by)

    def terminate(self):
        """SIGTERM, then SIGKILL after the grace. Returns how the pod's process ended."""
        if self.phase is not Phase.RUNNING:
            return "exit"
        worker, env = self.worker, self.cluster.env
        grace = self.cluster.grace
        if self.cluster.sigterm_ignored:
            yield env.timeout(grace)
        else:
            worker.warm_shutdown()
            if worker.up:
                yield worker.exited | env.timeout(grace)
            if not worker.up:
                return "SIGTERM"
        worker.kill()
        return "SIGKILL"

    # --- what the controllers and faults do to it ----------------------------------------------

    def update(self, **changes) -> None:
        """Change what the controllers see of the pod, keeping the cluster's counts right."""
        census = self.cluster.census
        census.leave(self)
        for key, value in changes.items():
            setattr(self, key, value)
        census.enter(self)
        if changes.keys() - {"drain"}:  # the workers plan does not read drain records
            self.cluster.workerset_changed()

    def delete(self, reason: str) -> None:
        """The API server accepted the deletion: record the worker's tasks now, then SIGTERM."""
        if self.deleting or self.gone:
            return
        now = self.cluster.env.now
        active, reserved = len(self.worker.active), len(self.worker.reserved)
        busy = active + reserved > 0
        self.termination = [now, self.name, active, reserved, busy, "", NAN, reason]
        self.cluster.terminations.append(self.termination)
        self.update(deleting=True)
        self.sigterm.succeed()

    def fail(self, reason: str) -> None:
        """The container died: phase Failed, the ElasticWorker replaces and removes it."""
        self.worker.kill()
        self.failure = reason
        self.released_at = self.cluster.env.now
        self.update(phase=Phase.FAILED)

    def remove(self, ended_by: str) -> None:
        now = self.cluster.env.now
        if self.termination is not None:
            self.termination[5] = ended_by
            self.termination[6] = self.released_at if self.released_at is not None else now
        if self.released_at is None:
            self.released_at = now
        self.cluster.census.leave(self)
        self.gone = True
        self.cluster.forget_pod(self)

    def view(self) -> PodView:
        """The pod as the ElasticWorker controller sees it (no metrics)."""
        return PodView(
            self.name,
            self.phase,
            self.created_at,
            self.deleting,
            self.labels,
            self.index,
            self.drain,
        )
