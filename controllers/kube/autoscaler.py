"""The ElasticWorkerAutoscaler controller: one sync of one autoscaler, and the drain actions.

A sync reads the autoscaler, its target ElasticWorker and that worker set's pods, reads the load
through a `MetricsSource`, asks `controllers.core.drain.decide_drain`, executes the actions and
publishes the status. The shell decides nothing: it only carries out the actions, in order.

Each drain step is written on the pod *before* it is acted on (`cordon-requested` before the
hook's cordon, `uncordon-requested` before its restore), so a restarted operator reads the step
back and resumes it. A hook failure leaves the step as it is; the next sync retries.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from controllers.api import (
    ElasticWorker,
    ElasticWorkerAutoscaler,
    InvalidResource,
    convert,
    validate_elastic_worker,
    validate_elastic_worker_autoscaler,
)
from controllers.core.decision import AutoscalerMemory, Decision
from controllers.core.drain import decide_drain
from controllers.core.types import (
    Action,
    Cordon,
    DrainStep,
    Mark,
    Observation,
    PodView,
    Reading,
    SetReplicas,
    Uncordon,
    Verify,
)
from controllers.core.workerset import resolve_replicas
from controllers.kube import views
from controllers.kube.client import AUTOSCALERS, ELASTIC_WORKERS, Conflict, Kube
from controllers.kube.hook import DrainHook, HookFailure, HookReply, make_hook
from controllers.kube.views import Obj
from controllers.kube.workers import CONFLICT_RETRIES, owned_pods
from controllers.metrics.source import MetricsSource, NoMetrics

log = logging.getLogger(__name__)

HookFactory = Callable[[str, str | None, float], DrainHook]


@dataclass
class SyncResult:
    found: bool
    decision: Decision | None = None
    done: list[str] = field(default_factory=list)  # what was carried out, for logs and tests


@dataclass
class _Context:
    """What one sync knows while it carries out the actions."""

    namespace: str
    ewa: Obj
    model: ElasticWorkerAutoscaler
    ew: Obj
    pods: dict[str, Obj]
    views: dict[str, PodView]
    hook: DrainHook | None
    hook_problem: str | None
    now: float
    done: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    scaled: bool = False


@dataclass
class AutoscalerController:
    kube: Kube
    metrics: MetricsSource = field(default_factory=NoMetrics)
    hook_factory: HookFactory = make_hook
    clock: Callable[[], float] = time.time
    memories: dict[tuple[str, str, str], AutoscalerMemory] = field(default_factory=dict)

    # -- one sync ------------------------------------------------------------------------------

    def sync(self, namespace: str, name: str) -> SyncResult:
        ewa = self.kube.get_autoscaler(namespace, name)
        if ewa is None:
            self.memories = {k: v for k, v in self.memories.items() if k[:2] != (namespace, name)}
            return SyncResult(found=False)
        meta = ewa["metadata"]
        status: dict[str, Any] = ewa.get("status") or {}
        generation = meta.get("generation")
        try:
            model = validate_elastic_worker_autoscaler(views.manifest_without_status(ewa))
        except InvalidResource as error:
            self._write_status(
                ewa,
                {"observedGeneration": generation},
                [views.condition("Invalid", True, "ValidationFailed", str(error), generation)],
                warn=str(error),
            )
            return SyncResult(found=True)

        valid = views.condition("Invalid", False, "Valid", "", generation)
        target = model.spec.scale_target_ref.name
        ew = self.kube.get_elastic_worker(namespace, target)
        ew_model: ElasticWorker | None = None
        problem = None
        if ew is None:
            problem = ("TargetNotFound", f"ElasticWorker {target!r} not found")
        else:
            try:
                ew_model = validate_elastic_worker(views.manifest_without_status(ew))
            except InvalidResource as error:
                problem = ("TargetInvalid", f"ElasticWorker {target!r} is invalid: {error}")
        if problem is not None or ew is None or ew_model is None:
            reason, message = problem or ("TargetNotFound", "")
            self._write_status(
                ewa,
                {"observedGeneration": generation},
                [valid, views.condition("Ready", False, reason, message, generation)],
            )
            return SyncResult(found=True)

        now = self.clock()
        pods = owned_pods(self.kube, ew)
        spec_in = model.spec
        cluster = self.metrics.cluster_load(namespace, target, spec_in.metric_spec.name)
        names = [p["metadata"]["name"] for p in pods]
        loads = self.metrics.pod_loads(namespace, names, spec_in.scale_in_spec.pod_metric_spec.name)
        pod_views = {
            p["metadata"]["name"]: views.pod_view(p, loads.get(p["metadata"]["name"])) for p in pods
        }
        ew_status = ew.get("status") or {}
        current = resolve_replicas(
            convert.workerset_spec(ew_model), _int(ew_status.get("desiredReplicas"))
        )
        obs = Observation(
            now=now, pods=tuple(pod_views.values()), replicas=current, cluster_load=cluster
        )
        key = (namespace, name, meta.get("uid") or "")
        memory = self.memories.get(key)
        if memory is None:
            memory = AutoscalerMemory(low_since=views.parse_time(status.get("lowLoadSince")))
        decision = decide_drain(convert.autoscaler_spec(model, ew_model), obs, memory)
        self.memories[key] = decision.memory

        hook, hook_problem = self._hook(namespace, model)
        ctx = _Context(
            namespace, ewa, model, ew, {p["metadata"]["name"]: p for p in pods}, pod_views,
            hook, hook_problem, now,
        )  # fmt: skip
        self._execute(ctx, decision.actions)
        if decision.actions:
            log.info(
                "autoscaler %s/%s: load=%s replicas %d -> %d (%s): %s",
                namespace,
                name,
                decision.load,
                current,
                decision.replicas,
                decision.reason,
                "; ".join(ctx.done) or "nothing done",
            )

        # Status, from what the pods say after the actions.
        after = {n: views.pod_view(p) for n, p in ctx.pods.items()}
        draining = views.drain_entries(after.values())
        mismatch = views.policy_mismatch(model, ew_model)
        load_text = "unknown" if decision.load is None else f"{decision.load:g}"
        conditions = [
            valid,
            views.condition(
                "Ready",
                decision.load is not None,
                "LoadKnown" if decision.load is not None else "LoadUnknown",
                f"load {load_text}: {decision.reason}",
                generation,
            ),
            views.condition(
                "Scaling",
                decision.replicas != current,
                "DesiredChanged" if decision.replicas != current else "Steady",
                f"{current} -> {decision.replicas}",
                generation,
            ),
            views.condition(
                "Draining",
                bool(draining),
                "WorkersDraining" if draining else "NoneDraining",
                "; ".join(ctx.problems) or f"{len(draining)} pods in the drain protocol",
                generation,
            ),
            views.condition(
                "MarkedPodsDeletable",
                mismatch is None,
                "ScaleInPolicyMatches" if mismatch is None else "ScaleInPolicyMismatch",
                mismatch or "the ElasticWorker deletes the pods this autoscaler marks",
                generation,
            ),
        ]
        wanted: dict[str, Any] = {
            "observedGeneration": generation,
            "currentLoad": None if decision.load is None else math.ceil(decision.load),
            "loadTimestamp": views.rfc3339(cluster.at) if _fresh(cluster, decision) else None,
            "currentReplicas": sum(1 for v in pod_views.values() if v.live),
            "desiredReplicas": decision.replicas,
            "lowLoadSince": views.rfc3339(decision.memory.low_since),
            "draining": draining,
        }
        if ctx.scaled:
            wanted["lastScaleTime"] = views.rfc3339(now)
        self._write_status(ewa, wanted, conditions)
        return SyncResult(found=True, decision=decision, done=ctx.done)

    def _hook(
        self, namespace: str, model: ElasticWorkerAutoscaler
    ) -> tuple[DrainHook | None, str | None]:
        spec = model.spec.scale_in_spec
        if not spec.shutdown_http_hook:
            return None, "no scaleInSpec.shutdownHttpHook: workers cannot be cordoned"
        token = None
        ref = spec.hook_token_secret_ref
        if ref is not None:
            token = self.kube.read_secret_key(namespace, ref.name, ref.key)
            if token is None:
                return None, f"hook token secret {ref.name}/{ref.key} not found"
        return self.hook_factory(spec.shutdown_http_hook, token, spec.hook_timeout_seconds), None

    def _write_status(
        self, ewa: Obj, wanted: dict[str, Any], conditions: list[Obj], warn: str | None = None
    ) -> None:
        meta = ewa["metadata"]
        status = ewa.get("status") or {}
        wanted = dict(wanted)
        wanted["conditions"] = views.merge_conditions(
            status.get("conditions"), conditions, self.clock()
        )
        if views.status_changed(status, wanted):
            if warn:
                log.warning("autoscaler %s/%s invalid: %s", meta["namespace"], meta["name"], warn)
                self.kube.event(ewa, "ElasticWorkerAutoscaler", "Invalid", warn, warning=True)
            self.kube.patch_status(AUTOSCALERS, meta["namespace"], meta["name"], wanted)

    # -- actions -------------------------------------------------------------------------------

    def _execute(self, ctx: _Context, actions: Sequence[Action]) -> None:
        """Carry out the actions in order; consecutive hook actions of a kind share one call."""
        i = 0
        while i < len(actions):
            action = actions[i]
            if isinstance(action, SetReplicas):
                self._set_replicas(ctx, action.replicas)
                i += 1
                continue
            if isinstance(action, Mark):
                self._mark(ctx, action.pod)
                i += 1
                continue
            batch = [action.pod]  # Cordon, Verify, Uncordon: one hook call per run of a kind
            j = i + 1
            while j < len(actions) and type(actions[j]) is type(action):
                batch.append(actions[j].pod)  # type: ignore[union-attr]
                j += 1
            if isinstance(action, Cordon):
                self._cordon(ctx, batch)
            elif isinstance(action, Verify):
                self._verify(ctx, batch)
            elif isinstance(action, Uncordon):
                self._uncordon(ctx, batch)
            i = j

    def _set_replicas(self, ctx: _Context, replicas: int) -> None:
        """Write the target's `spec.replicas` so that, with a `scale` not yet consumed, it
        resolves to `replicas`; conditioned on the resourceVersion read, retried on conflict."""
        name = ctx.model.spec.scale_target_ref.name
        for attempt in range(CONFLICT_RETRIES):
            ew = ctx.ew if attempt == 0 else self.kube.get_elastic_worker(ctx.namespace, name)
            if ew is None:
                return
            pending = (ew.get("spec") or {}).get("scale") or 0
            write = {"replicas": max(0, replicas - pending)}
            try:
                self.kube.patch_spec(
                    ELASTIC_WORKERS, ctx.namespace, name, ew["metadata"]["resourceVersion"], write
                )
            except Conflict:
                continue
            ctx.scaled = True
            ctx.done.append(f"replicas={replicas}")
            self.kube.event(
                ctx.ewa, "ElasticWorkerAutoscaler", "SetReplicas", f"{name} replicas={replicas}"
            )
            return
        ctx.problems.append(f"replicas={replicas} not written: {CONFLICT_RETRIES} conflicts")

    def _patch(self, ctx: _Context, pod: str, body: Obj) -> bool:
        updated = self.kube.patch_pod(ctx.namespace, pod, body)
        if updated is None:
            ctx.pods.pop(pod, None)
            return False
        ctx.pods[pod] = updated
        return True

    def _uid(self, ctx: _Context, pod: str) -> str | None:
        obj = ctx.pods.get(pod)
        return obj["metadata"].get("uid") if obj else None

    def _step(self, ctx: _Context, pod: str) -> DrainStep | None:
        obj = ctx.pods.get(pod)
        return views.pod_view(obj).drain.step if obj else None

    def _call_hook(
        self, ctx: _Context, method: str, pods: list[str]
    ) -> dict[str, HookReply] | None:
        if ctx.hook is None:
            ctx.problems.append(f"{method} {', '.join(pods)}: {ctx.hook_problem}")
            return None
        try:
            return getattr(ctx.hook, method)(pods)
        except HookFailure as error:
            log.warning("hook %s of %s failed: %s", method, pods, error)
            ctx.problems.append(f"hook {method} failed: {error}")
            return None

    def _cordon(self, ctx: _Context, pods: list[str]) -> None:
        requested = []
        for pod in pods:
            if self._step(ctx, pod) == DrainStep.CORDON_REQUESTED:
                requested.append(pod)  # asked before (maybe by an operator that died): again
            elif self._patch(
                ctx,
                pod,
                views.drain_patch(self._uid(ctx, pod), DrainStep.CORDON_REQUESTED, ctx.now),
            ):
                requested.append(pod)
        if not requested:
            return
        replies = self._call_hook(ctx, "cordon", requested)
        for pod in requested:
            reply = (replies or {}).get(pod)
            if reply is None or not reply.ok:
                if replies is not None:
                    why = reply.error if reply else "no reply"
                    ctx.problems.append(f"cordon {pod} not acknowledged: {why}")
                continue
            since = reply.report.at if reply.report is not None else self.clock()
            body = views.drain_patch(self._uid(ctx, pod), DrainStep.CORDONED, since, reply.report)
            if self._patch(ctx, pod, body):
                ctx.done.append(f"cordoned {pod}")

    def _verify(self, ctx: _Context, pods: list[str]) -> None:
        replies = self._call_hook(ctx, "inspect", pods)
        for pod in pods:
            reply = (replies or {}).get(pod)
            if reply is not None and reply.consuming_again:
                # The cordon no longer holds (the worker restarted?): record that the cordon is
                # to be asked for again, so that no report of a consuming worker can mark it.
                body = views.drain_patch(self._uid(ctx, pod), DrainStep.CORDON_REQUESTED, ctx.now)
                if self._patch(ctx, pod, body):
                    ctx.problems.append(f"{pod} consumes again after its cordon: re-cordoning")
                continue
            if reply is None or reply.report is None or reply.error:
                continue
            if self._patch(ctx, pod, views.report_patch(self._uid(ctx, pod), reply.report)):
                report = reply.report
                ctx.done.append(
                    f"verified {pod} (active={report.active} reserved={report.reserved})"
                )

    def _mark(self, ctx: _Context, pod: str) -> None:
        labels = ctx.model.spec.scale_in_spec.mark_for_termination_label
        body = views.drain_patch(
            self._uid(ctx, pod), DrainStep.MARKED, ctx.now, keep_report=True, labels=labels
        )
        if self._patch(ctx, pod, body):
            ctx.done.append(f"marked {pod}")
            self.kube.event(
                ctx.ewa, "ElasticWorkerAutoscaler", "Marked", f"{pod} drained idle: marked {labels}"
            )

    def _uncordon(self, ctx: _Context, pods: list[str]) -> None:
        requested = []
        for pod in pods:
            if self._step(ctx, pod) == DrainStep.UNCORDON_REQUESTED:
                requested.append(pod)
                continue
            body = views.drain_patch(
                self._uid(ctx, pod), DrainStep.UNCORDON_REQUESTED, ctx.now, keep_report=True
            )
            if self._patch(ctx, pod, body):
                requested.append(pod)
        if not requested:
            return
        replies = self._call_hook(ctx, "restore", requested)
        for pod in requested:
            reply = (replies or {}).get(pod)
            if reply is None or not reply.ok:
                continue
            if self._patch(
                ctx, pod, views.drain_patch(self._uid(ctx, pod), DrainStep.SERVING, None)
            ):
                ctx.done.append(f"uncordoned {pod}")


def _fresh(reading: Reading | None, decision: Decision) -> bool:
    return reading is not None and decision.load is not None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
