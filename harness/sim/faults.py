"""Faults, each injected at its `at` (the kinds are `harness.scenario.FAULT_KINDS`).

- `metrics_stale`: published metrics freeze, with their old timestamps, for `duration`.
- `metrics_outage`: no metrics at all for `duration`.
- `controller_restart`: both controllers stop for 5 s (or `duration`) and lose their in-memory
  state; what the pods and the resources record survives.
- `hook_failure`: hook calls fail (after their round trip) for `duration`, or the next `count`
  calls when no duration is given.
- `hook_timeout`: hook calls hang for hookTimeoutSeconds and fail; same window rule.
- `pod_start_failure`: the next `count` pods to finish start-up go Failed instead.
- `worker_crash`: `count` running workers die at once, busiest first; their active tasks are
  killed, their pods go Failed and the ElasticWorker replaces them.
- `api_conflict`: the next `count` writes of the desired replicas or scale fail with a 409 and are
  retried on the next sync.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controllers.core.types import Phase
from harness.scenario import Fault
from harness.sim.controllers import RESTART_DOWNTIME

if TYPE_CHECKING:
    from harness.sim.cluster import Cluster


class HookFault:
    """A window of time, or a number of calls, during which hook calls misbehave."""

    def __init__(self) -> None:
        self.until = -1.0
        self.calls = 0

    def open(self, now: float, fault: Fault) -> None:
        if fault.duration > 0:
            self.until = max(self.until, now + fault.duration)
        else:
            self.calls += fault.count

    def hit(self, now: float) -> bool:
        if now < self.until:
            return True
        if self.calls:
            self.calls -= 1
            return True
        return False


class Faults:
    def __init__(self, cluster: Cluster, faults: list[Fault]) -> None:
        self.cluster = cluster
        self.faults = faults
        self.start_failures = 0
        self.conflicts = 0
        self.hook_failure = HookFault()
        self.hook_timeout = HookFault()

    def start(self) -> None:
        for fault in self.faults:
            self.cluster.env.process(self.inject(fault))

    def inject(self, fault: Fault):
        cluster = self.cluster
        yield cluster.env.timeout(fault.at)
        now = cluster.env.now
        detail = f"{fault.kind} duration={fault.duration:g} count={fault.count}"
        cluster.event("fault", "", detail)
        match fault.kind:
            case "metrics_stale":
                cluster.collector.freeze(now + fault.duration)
            case "metrics_outage":
                cluster.collector.go_dark(now + fault.duration)
            case "controller_restart":
                downtime = fault.duration or RESTART_DOWNTIME
                cluster.event("restart", "", f"controllers down for {downtime:g} s")
                cluster.autoscaler.restart(downtime)
                cluster.workerset.restart(downtime)
            case "hook_failure":
                self.hook_failure.open(now, fault)
            case "hook_timeout":
                self.hook_timeout.open(now, fault)
            case "pod_start_failure":
                self.start_failures += fault.count
            case "worker_crash":
                self.crash(fault.count)
            case "api_conflict":
                self.conflicts += fault.count
            case _:
                raise ValueError(f"unknown fault kind {fault.kind!r}")

    def crash(self, count: int) -> None:
        running = [
            p
            for p in self.cluster.pods.values()
            if p.phase is Phase.RUNNING and not p.deleting and p.worker.up
        ]
        running.sort(key=lambda p: (-len(p.worker.active) - len(p.worker.reserved), p.index))
        for pod in running[:count]:
            self.cluster.event("crash", pod.name, f"active={len(pod.worker.active)}")
            pod.fail("crash")

    # --- what the rest of the model asks -------------------------------------------------------

    def take_start_failure(self) -> bool:
        if self.start_failures:
            self.start_failures -= 1
            return True
        return False

    def take_conflict(self) -> bool:
        if self.conflicts:
            self.conflicts -= 1
            return True
        return False

    def hook_fails(self) -> bool:
        return self.hook_failure.hit(self.cluster.env.now)

    def hook_times_out(self) -> bool:
        return self.hook_timeout.hit(self.cluster.env.now)
