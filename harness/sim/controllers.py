"""The two controller loops, executing `controllers.core` decisions as the Kubernetes shell does.

- `AutoscalerController` (the ElasticWorkerAutoscaler) syncs every `sync_period`: it observes the
  pods, the metrics and the ElasticWorker, calls the policy's `decide`, and executes the actions
  in order (hook calls take their round trip). `low_since` is kept where the status block would
  be, so a restart recovers it; the rest of its memory is lost on restart.
- `ElasticWorkerController` reconciles on the whole second after a change: the workers plan (or
  the prototype's), then it creates pods, deletes the pods the plan names, removes Failed pods.
- `Hook` is the shutdown/drain hook service between the autoscaler and the workers.

Both controllers stop for `RESTART_DOWNTIME` seconds on `controller_restart` and forget what they
kept in memory; a drain in flight resumes from the DrainRecords on the pods.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import simpy

from controllers.core.decision import AutoscalerMemory
from controllers.core.policies import Policy
from controllers.core.seed import plan_seed_workers
from controllers.core.specs import AutoscalerSpec, WorkerSetSpec
from controllers.core.types import (
    Action,
    Cordon,
    DrainRecord,
    DrainStep,
    Mark,
    Observation,
    SetReplicas,
    SetScale,
    Shutdown,
    TaskReport,
    Uncordon,
    Verify,
)
from controllers.core.workerset import plan_workers, resolve_replicas

if TYPE_CHECKING:
    from harness.sim.cluster import Cluster
    from harness.sim.worker import Pod

RESTART_DOWNTIME = 5.0
HOOK_TIMEOUT = 10.0  # scaleInSpec.hookTimeoutSeconds default


class Hook:
    """The shutdown/drain hook: one HTTP round trip to a worker (cancel/add consumer, inspect)."""

    def __init__(self, cluster: Cluster, latency: float, timeout: float) -> None:
        self.cluster = cluster
        self.latency = latency
        self.timeout = timeout

    def call(self, pod: Pod | None, effect=None):
        """Run `effect` on the pod's worker halfway through the round trip; True if it was
        acknowledged. Fails under a hook fault, or when the worker is not up (or shutting down).
        Without a pod, only the hook service itself is called."""
        env, faults = self.cluster.env, self.cluster.faults
        if faults.hook_times_out():
            yield env.timeout(self.timeout)
            return False
        failing = faults.hook_fails()
        half = self.latency / 2
        if half:
            yield env.timeout(half)
        ok = not failing
        if ok and pod is not None:
            ok = pod.worker.up and not pod.worker.closing
            if ok and effect is not None:
                effect()
        if half:
            yield env.timeout(half)
        return ok


class Controller:
    """A control loop that a `controller_restart` stops for a while and makes forget."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.process: simpy.Process | None = None
        self.down_until = -1.0

    def start(self) -> None:
        self.process = self.cluster.env.process(self.run())

    def run(self):
        env = self.cluster.env
        while True:
            try:
                yield from self.loop()
            except simpy.Interrupt:
                self.forget()
                while env.now < self.down_until:
                    yield env.timeout(self.down_until - env.now)

    def restart(self, downtime: float) -> None:
        env = self.cluster.env
        down = env.now < self.down_until
        self.down_until = max(self.down_until, env.now + downtime)
        if not down and self.process is not None:
            self.process.interrupt("restart")

    def loop(self):
        raise NotImplementedError

    def forget(self) -> None:
        raise NotImplementedError


class ElasticWorkerController(Controller):
    """Owns the worker pods: creates, deletes marked or chosen ones, removes Failed ones."""

    def __init__(self, cluster: Cluster, spec: WorkerSetSpec, policy: Policy) -> None:
        super().__init__(cluster)
        self.spec = spec
        self.policy = policy
        # The resource as stored by the API server (survives restarts).
        self.replicas = resolve_replicas(spec)  # spec.replicas
        self.scale = spec.scale  # spec.scale, the one-shot delta
        self.actual_annotation: int | None = None  # the prototype's actualReplicas annotation
        self.desired = self.replicas if not policy.prototype_workerset else spec.min_replicas
        # In memory.
        self.next_index = 0
        self.dirty = True
        self.wakeup = cluster.env.event()

    def loop(self):
        """Reconcile, then sleep until something it reads changes; reconciles happen on whole
        seconds, so changes within one second are handled together."""
        env = self.cluster.env
        while True:
            if self.dirty:
                self.reconcile()
            if not self.dirty:  # its own writes count as changes: they are watched too
                self.wakeup = env.event()
                yield self.wakeup
            yield env.timeout(math.floor(env.now) + 1.0 - env.now)

    def changed(self) -> None:
        self.dirty = True
        if not self.wakeup.triggered:
            self.wakeup.succeed()

    def forget(self) -> None:
        self.next_index = 0
        self.dirty = True

    def reconcile(self) -> None:
        self.dirty = False
        cluster = self.cluster
        pods = [pod.view() for pod in cluster.pods.values()]
        if self.policy.prototype_workerset:
            spec = dataclasses.replace(self.spec, scale=self.scale)
            seed = plan_seed_workers(spec, pods, self.actual_annotation, cluster.env.now)
            self.actual_annotation = seed.actual_replicas
            self.scale = 0
            self.desired = seed.acceptable
            self.next_index = max([self.next_index, *(p.index + 1 for p in pods)])
            for name in seed.create:
                cluster.create_pod(name, self.next_index)
                self.next_index += 1
            delete: tuple[str, ...] = seed.delete
            cleanup: tuple[str, ...] = ()
        else:
            spec = dataclasses.replace(self.spec, replicas=self.replicas, scale=self.scale)
            plan = plan_workers(spec, pods, self.next_index, None, self.policy.ranking)
            self.replicas = self.desired = plan.replicas
            self.scale -= plan.consumed_scale
            self.next_index = plan.next_index
            for new in plan.create:
                cluster.create_pod(new.name, new.index)
            delete, cleanup = plan.delete, plan.cleanup
        for name in delete:
            cluster.pods[name].delete("policy")
        for name in cleanup:
            pod = cluster.pods[name]
            pod.delete(pod.failure or "cleanup")

    # --- writes by the autoscaler --------------------------------------------------------------

    def set_replicas(self, n: int) -> None:
        self.replicas = n
        self.desired = n
        self.changed()

    def set_scale(self, delta: int) -> None:
        self.scale = delta  # overwritten, not added: the prototype's flaw
        self.changed()


class AutoscalerController(Controller):
    def __init__(
        self,
        cluster: Cluster,
        spec: AutoscalerSpec,
        policy: Policy,
        workerset: ElasticWorkerController,
        period: float,
        offset: float,
        hook: Hook,
    ) -> None:
        super().__init__(cluster)
        self.spec = spec
        self.policy = policy
        self.workerset = workerset
        self.period = period
        self.offset = offset
        self.hook = hook
        self.status_low_since: float | None = None  # the status block's lowLoadSince
        self.memory = AutoscalerMemory()
        self.unwritten: Action | None = None  # a write that met a 409, retried next sync
        self.first = True

    def forget(self) -> None:
        self.memory = AutoscalerMemory(low_since=self.status_low_since)
        self.unwritten = None

    def loop(self):
        env = self.cluster.env
        if self.first:
            self.first = False
            yield env.timeout(self.offset)
        while True:
            started = env.now
            yield from self.sync()
            yield env.timeout(max(0.0, started + self.period - env.now))

    def observe(self) -> Observation:
        cluster = self.cluster
        return Observation(
            now=cluster.env.now,
            pods=cluster.collector.pod_views(cluster.pods.values()),
            replicas=self.workerset.desired,
            cluster_load=cluster.collector.cluster_load(),
            running_tasks=cluster.active,
            queued_tasks=len(cluster.broker.queue) + cluster.reserved,
            actual_replicas=self.workerset.actual_annotation,
        )

    def sync(self):
        if self.unwritten is not None:
            action, self.unwritten = self.unwritten, None
            self.write(action)
        decision = self.policy.decide(self.spec, self.observe(), self.memory)
        self.memory = decision.memory
        self.status_low_since = decision.memory.low_since
        for action in decision.actions:
            ok = yield from self.execute(action)
            if not ok and isinstance(action, (SetReplicas, SetScale, Shutdown)):
                # A 409, or the prototype's hook answering non-200: the rest of the decision
                # assumed it, so this sync ends here (the write is retried on the next one).
                break

    # --- actions, as the Kubernetes shell executes them ----------------------------------------

    def execute(self, action: Action):
        """Carry out one action; False when it did not take effect."""
        match action:
            case SetReplicas() | SetScale():
                return self.write(action)
            case Shutdown(pods=names):
                return (yield from self.shutdown(names))
        pod = self.cluster.pods.get(action.pod)
        if pod is None or pod.deleting:
            return False
        match action:
            case Cordon():
                return (yield from self.cordon(pod))
            case Verify():
                return (yield from self.verify(pod))
            case Mark():
                self.mark(pod)
                return True
            case Uncordon():
                return (yield from self.uncordon(pod))
        raise TypeError(f"unknown action {action!r}")

    def write(self, action: SetReplicas | SetScale) -> bool:
        cluster, ew = self.cluster, self.workerset
        if cluster.faults.take_conflict():
            cluster.event("conflict", "", f"409 on {action}: retried next sync")
            self.unwritten = action
            return False
        self.unwritten = None  # a newer write supersedes one still waiting for its retry
        if isinstance(action, SetReplicas):
            before = ew.desired
            ew.set_replicas(action.replicas)
            if action.replicas != before:
                cluster.event("scale", "", f"{before} -> {action.replicas}")
        else:
            ew.set_scale(action.delta)
            if action.delta:
                cluster.event("scale", "", f"scale {action.delta:+d}")
        return True

    def report(self, pod: Pod) -> TaskReport:
        worker = pod.worker
        return TaskReport(len(worker.active), len(worker.reserved), self.cluster.env.now)

    def cordon(self, pod: Pod):
        if pod.drain.step != DrainStep.CORDON_REQUESTED:  # a repeated request keeps its start
            pod.update(drain=DrainRecord(DrainStep.CORDON_REQUESTED, self.cluster.env.now))
        if not (yield from self.hook.call(pod, pod.worker.cancel_consumer)):
            self.cluster.event("hook_error", pod.name, "cordon")
            return False
        report = self.report(pod)
        pod.update(drain=DrainRecord(DrainStep.CORDONED, report.at, report))
        self.cluster.event("cordon", pod.name, f"active={report.active} reserved={report.reserved}")
        return True

    def verify(self, pod: Pod):
        if not (yield from self.hook.call(pod)):
            self.cluster.event("hook_error", pod.name, "verify")
            return False
        if pod.drain.step != DrainStep.CORDONED:
            return False
        report = self.report(pod)
        pod.update(drain=dataclasses.replace(pod.drain, report=report))
        self.cluster.event("verify", pod.name, f"active={report.active} reserved={report.reserved}")
        return True

    def mark(self, pod: Pod) -> None:
        now = self.cluster.env.now
        pod.update(
            labels={**pod.labels, **self.spec.mark_label},
            drain=DrainRecord(DrainStep.MARKED, now, pod.drain.report),
        )
        self.cluster.event("mark", pod.name, "")

    def uncordon(self, pod: Pod):
        now = self.cluster.env.now
        pod.update(drain=DrainRecord(DrainStep.UNCORDON_REQUESTED, now))
        if not (yield from self.hook.call(pod, pod.worker.add_consumer)):
            self.cluster.event("hook_error", pod.name, "uncordon")
            return False
        pod.update(drain=DrainRecord(DrainStep.SERVING, self.cluster.env.now))
        self.cluster.event("uncordon", pod.name, "")
        return True

    def shutdown(self, names: tuple[str, ...]):
        """The prototype's hook: Flower's warm-shutdown broadcast per pod, stopping at the first
        failure. The worker exits after its active tasks; the pod stays Running."""
        cluster = self.cluster
        if not (yield from self.hook.call(None)):
            cluster.event("hook_error", "", "shutdown")
            return False
        for name in names:
            pod = cluster.pods.get(name)
            if pod is None or not pod.worker.up or pod.worker.closing:
                cluster.event("hook_error", name, "shutdown")
                return False
            cluster.event("shutdown", name, f"active={len(pod.worker.active)}")
            pod.worker.warm_shutdown()
        return True
