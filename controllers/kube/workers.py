"""The ElasticWorker controller: one reconcile of one ElasticWorker.

Read the object and its pods, ask `controllers.core.workerset.plan_workers` what to do, write the
consumed `scale` back (conditioned on the resourceVersion read, so a concurrent write of `scale`
is never lost), then create and delete pods as planned and publish the status. The order makes a
crash at any point safe: the desired count is stored before any pod is created for it, so a
restarted controller neither adds the same `scale` twice nor forgets it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controllers.api import InvalidResource, convert, validate_elastic_worker
from controllers.core.types import Phase
from controllers.core.workerset import plan_workers
from controllers.kube import views
from controllers.kube.client import ELASTIC_WORKERS, Conflict, Kube
from controllers.kube.views import Obj

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 5


@dataclass(frozen=True)
class Outcome:
    """What one reconcile did (for logs and tests)."""

    found: bool
    valid: bool = True
    created: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    replicas: int | None = None


def owned_pods(kube: Kube, ew: Obj) -> list[Obj]:
    meta = ew["metadata"]
    pods = kube.list_pods(meta["namespace"], views.pod_selector(meta["name"]))
    return [p for p in pods if views.is_owned_by(p, meta["name"], meta.get("uid"))]


def reconcile_elastic_worker(
    kube: Kube, namespace: str, name: str, clock: Callable[[], float] = time.time
) -> Outcome:
    for _ in range(CONFLICT_RETRIES):
        ew = kube.get_elastic_worker(namespace, name)
        if ew is None:
            return Outcome(found=False)
        meta = ew["metadata"]
        status: dict[str, Any] = ew.get("status") or {}
        try:
            model = validate_elastic_worker(views.manifest_without_status(ew))
        except InvalidResource as error:
            _write_invalid(kube, ew, str(error), clock())
            return Outcome(found=True, valid=False)

        pods = owned_pods(kube, ew)
        by_name = {p["metadata"]["name"]: p for p in pods}
        pod_views = [views.pod_view(p) for p in pods]
        spec = convert.workerset_spec(model)
        plan = plan_workers(
            spec,
            pod_views,
            next_index=_int(status.get("nextPodIndex")) or 0,
            fallback_replicas=_int(status.get("desiredReplicas")),
        )
        if plan.replicas != spec.replicas or plan.consumed_scale != 0:
            write = {"replicas": plan.replicas, "scale": spec.scale - plan.consumed_scale}
            try:
                ew = kube.patch_spec(
                    ELASTIC_WORKERS, namespace, name, meta["resourceVersion"], write
                )
            except Conflict:
                log.info("elasticworker %s/%s changed while planning: re-read", namespace, name)
                continue
            if plan.consumed_scale:
                kube.event(
                    ew,
                    "ElasticWorker",
                    "ScaleConsumed",
                    f"scale {plan.consumed_scale:+d} folded into replicas={plan.replicas}",
                )
        break
    else:
        raise Conflict(f"elasticworker {namespace}/{name}: {CONFLICT_RETRIES} conflicts in a row")

    created: list[str] = []
    for new in plan.create:
        if kube.create_pod(namespace, views.new_pod_manifest(ew, model, new)):
            created.append(new.name)
    deleted: list[str] = []
    for pod_name in (*plan.delete, *plan.cleanup):
        pod = by_name.get(pod_name)
        uid = pod["metadata"].get("uid") if pod else None
        if kube.delete_pod(namespace, pod_name, uid):
            deleted.append(pod_name)
    if created:
        kube.event(ew, "ElasticWorker", "CreatedPods", f"created {', '.join(created)}")
    if deleted:
        kube.event(ew, "ElasticWorker", "DeletedPods", f"deleted {', '.join(deleted)}")
    if created or deleted:
        log.info(
            "elasticworker %s/%s: replicas=%d created=%s deleted=%s",
            namespace,
            name,
            plan.replicas,
            created,
            deleted,
        )

    live = [v for v in pod_views if v.live]
    members = plan.members
    running = [v for v in live if v.phase == Phase.RUNNING]
    ready = sum(1 for v in live if views.pod_ready(by_name[v.name]))
    scaling = bool(plan.create or plan.delete or plan.cleanup or any(v.deleting for v in pod_views))
    all_ready = members == plan.replicas and len(running) == len(live) and not plan.create
    generation = meta.get("generation")
    conditions = [
        views.condition(
            "Ready",
            all_ready,
            "AllMembersRunning" if all_ready else "NotAllMembersRunning",
            f"{len(running)}/{len(live)} live pods running, {members} members, "
            f"{plan.replicas} desired",
            generation,
        ),
        views.condition(
            "Scaling",
            scaling,
            "PodsChanging" if scaling else "Stable",
            f"creating {len(plan.create)}, deleting {len(plan.delete) + len(plan.cleanup)}"
            + (f", {plan.waiting} surplus waiting for scale-in marks" if plan.waiting else ""),
            generation,
        ),
        views.condition("Invalid", False, "Valid", "", generation),
    ]
    wanted = {
        "objectStatus": "Valid",
        "replicas": len(live),
        "actualReplicas": len(live),
        "desiredReplicas": plan.replicas,
        "readyReplicas": ready,
        "selector": views.pod_selector(name),
        "observedGeneration": generation,
        "nextPodIndex": plan.next_index,
        "conditions": views.merge_conditions(status.get("conditions"), conditions, clock()),
    }
    if views.status_changed(status, wanted):
        kube.patch_status(ELASTIC_WORKERS, namespace, name, wanted)
    return Outcome(
        found=True, created=tuple(created), deleted=tuple(deleted), replicas=plan.replicas
    )


def _write_invalid(kube: Kube, ew: Obj, message: str, now: float) -> None:
    """Record why; change nothing else (the desired count and pods stay as they are)."""
    meta = ew["metadata"]
    status = ew.get("status") or {}
    generation = meta.get("generation")
    conditions = [views.condition("Invalid", True, "ValidationFailed", message, generation)]
    wanted = {
        "objectStatus": "InValid",
        "observedGeneration": generation,
        "conditions": views.merge_conditions(status.get("conditions"), conditions, now),
    }
    if views.status_changed(status, wanted):
        log.warning("elasticworker %s/%s invalid: %s", meta["namespace"], meta["name"], message)
        kube.patch_status(ELASTIC_WORKERS, meta["namespace"], meta["name"], wanted)
        kube.event(ew, "ElasticWorker", "Invalid", message, warning=True)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
