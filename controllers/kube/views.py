"""Pure conversions between Kubernetes objects (plain dicts) and the core's values.

Nothing here talks to the API server or reads the clock: the shell reads objects, these functions
turn them into `controllers.core` inputs, and turn the core's answers back into the manifests and
patches the shell writes. Decisions stay in `controllers.core`.

Pods are camelCase dicts as the API server serves them (`metadata.creationTimestamp`, ...).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from controllers.api import (
    API_VERSION,
    ELASTIC_WORKER_KIND,
    GROUP,
    ElasticWorker,
    ElasticWorkerAutoscaler,
    parse_rfc3339,
)
from controllers.core.types import DrainRecord, DrainStep, Phase, PodView, Reading, TaskReport
from controllers.core.workerset import NewPod

# --- names on the pods ---------------------------------------------------------------------------

OWNER_LABEL = f"{GROUP}/elasticworker"
INDEX_ANNOTATION = f"{GROUP}/index"
DRAIN_STEP_ANNOTATION = f"{GROUP}/drain-step"
DRAIN_SINCE_ANNOTATION = f"{GROUP}/drain-since"
DRAIN_REPORT_ANNOTATION = f"{GROUP}/drain-report"
DRAIN_ANNOTATIONS = (DRAIN_STEP_ANNOTATION, DRAIN_SINCE_ANNOTATION, DRAIN_REPORT_ANNOTATION)

Obj = dict[str, Any]


# --- time ----------------------------------------------------------------------------------------


def format_micro(seconds: float) -> str:
    """RFC 3339 UTC with microseconds: drain times are compared to each other, whole seconds
    would make a report taken just after the cordon look older than it."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any) -> float | None:
    """Epoch seconds from an RFC 3339 string or a number; None when absent or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            return parse_rfc3339(text.replace("z", "Z"))
        except ValueError:
            return None
    return None


# --- resources -> specs --------------------------------------------------------------------------


def manifest_without_status(obj: Mapping[str, Any]) -> Obj:
    """The part of a served object that validation reads: the status belongs to the controller
    and may hold keys a newer or older controller wrote."""
    return {k: v for k, v in obj.items() if k != "status"}


def policy_mismatch(ewa: ElasticWorkerAutoscaler, ew: ElasticWorker) -> str | None:
    """Why pods the autoscaler marks would not be deleted by the ElasticWorker, or None."""
    mark = dict(ewa.spec.scale_in_spec.mark_for_termination_label)
    policy = ew.spec.scale_in_policy
    if policy.name != "selector":
        return (
            f"the ElasticWorker's scaleInPolicy is {policy.name!r}, not 'selector' with "
            f"matchLabels {mark}: marked pods would not be the ones deleted"
        )
    selector = policy.selector
    labels = dict(selector.match_labels) if selector is not None else {}
    if labels != mark or (selector is not None and selector.match_expressions):
        return (
            f"the ElasticWorker's scaleInPolicy selector {labels} is not the autoscaler's "
            f"markForTerminationLabel {mark}: marked pods would not be deleted"
        )
    return None


# --- pods -> views -------------------------------------------------------------------------------


def is_owned_by(pod: Mapping[str, Any], ew_name: str, ew_uid: str | None) -> bool:
    """Carries the ownership label and the ElasticWorker's controller reference."""
    meta = pod.get("metadata") or {}
    if (meta.get("labels") or {}).get(OWNER_LABEL) != ew_name:
        return False
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == ELASTIC_WORKER_KIND:
            return ew_uid is None or ref.get("uid") == ew_uid
    return False


def _phase(pod: Mapping[str, Any]) -> Phase:
    raw = (pod.get("status") or {}).get("phase") or "Pending"
    try:
        return Phase(raw)
    except ValueError:
        # "Unknown": the node stopped reporting; the pod may still hold a worker.
        return Phase.RUNNING


def _index(meta: Mapping[str, Any]) -> int:
    raw = (meta.get("annotations") or {}).get(INDEX_ANNOTATION)
    try:
        value = int(str(raw))
    except ValueError:
        return 0
    return max(value, 0)


def parse_report(raw: str | None) -> TaskReport | None:
    """The drain-report annotation, JSON `{"active": n, "reserved": n, "at": time}`."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
        active, reserved = data["active"], data["reserved"]
        at = parse_time(data["at"])
    except (ValueError, KeyError, TypeError):
        return None
    if at is None or not all(isinstance(n, int) and n >= 0 for n in (active, reserved)):
        return None
    return TaskReport(active=active, reserved=reserved, at=at)


def drain_record(annotations: Mapping[str, str]) -> DrainRecord:
    raw_step = annotations.get(DRAIN_STEP_ANNOTATION)
    try:
        step = DrainStep(raw_step) if raw_step else DrainStep.SERVING
    except ValueError:
        step = DrainStep.SERVING
    return DrainRecord(
        step=step,
        since=parse_time(annotations.get(DRAIN_SINCE_ANNOTATION)),
        report=parse_report(annotations.get(DRAIN_REPORT_ANNOTATION)),
    )


def pod_view(pod: Mapping[str, Any], load: Reading | None = None) -> PodView:
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    created = parse_time(meta.get("creationTimestamp"))
    return PodView(
        name=meta.get("name") or "",
        phase=_phase(pod),
        created_at=created if created is not None else 0.0,
        deleting=bool(meta.get("deletionTimestamp")),
        labels=dict(meta.get("labels") or {}),
        index=_index(meta),
        drain=drain_record(annotations),
        load=load,
    )


def pod_ready(pod: Mapping[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


# --- core answers -> manifests and patches -------------------------------------------------------


def owner_reference(ew: Mapping[str, Any]) -> Obj:
    meta = ew["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": ELASTIC_WORKER_KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def new_pod_manifest(ew: Mapping[str, Any], model: ElasticWorker, pod: NewPod) -> Obj:
    """A worker pod from the template: its labels and annotations, plus ownership and index."""
    template = model.spec.template
    labels = {**template.metadata.labels, OWNER_LABEL: model.metadata.name or ""}
    annotations = {**template.metadata.annotations, INDEX_ANNOTATION: str(pod.index)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod.name,
            "namespace": ew["metadata"].get("namespace"),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(ew)],
        },
        "spec": copy.deepcopy(template.spec),
    }


def pod_selector(ew_name: str) -> str:
    """The label selector of an ElasticWorker's pods (also `status.selector` for /scale)."""
    return f"{OWNER_LABEL}={ew_name}"


def report_json(report: TaskReport) -> str:
    return json.dumps({"active": report.active, "reserved": report.reserved, "at": report.at})


def drain_patch(
    uid: str | None,
    step: DrainStep,
    since: float | None,
    report: TaskReport | None = None,
    *,
    keep_report: bool = False,
    labels: Mapping[str, str] | None = None,
) -> Obj:
    """A merge patch recording a drain step on a pod. `since=None` clears the time; the report
    is replaced (or cleared) unless `keep_report`. The uid makes the patch fail rather than touch
    a successor with the same name."""
    annotations: dict[str, str | None] = {
        DRAIN_STEP_ANNOTATION: step.value,
        DRAIN_SINCE_ANNOTATION: None if since is None else format_micro(since),
    }
    if not keep_report:
        annotations[DRAIN_REPORT_ANNOTATION] = None if report is None else report_json(report)
    meta: Obj = {"annotations": annotations}
    if uid:
        meta["uid"] = uid
    if labels:
        meta["labels"] = dict(labels)
    return {"metadata": meta}


# --- status --------------------------------------------------------------------------------------


def condition(
    kind: str, ok: bool, reason: str, message: str = "", generation: int | None = None
) -> Obj:
    out: Obj = {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def merge_conditions(
    previous: Iterable[Mapping[str, Any]] | None, new: Sequence[Obj], now: float
) -> list[Obj]:
    """The new conditions, keeping each one's lastTransitionTime while its status holds, and
    keeping previous conditions of other types untouched."""
    old = {c.get("type"): c for c in previous or [] if isinstance(c, Mapping)}
    stamp = _whole_seconds(now)
    out: list[Obj] = []
    for cond in new:
        before = old.pop(cond["type"], None)
        merged = dict(cond)
        if before is not None and before.get("status") == cond["status"]:
            merged["lastTransitionTime"] = before.get("lastTransitionTime") or stamp
        else:
            merged["lastTransitionTime"] = stamp
        out.append(merged)
    out.extend(dict(c) for c in old.values())
    return out


def _whole_seconds(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339(seconds: float | None) -> str | None:
    return None if seconds is None else _whole_seconds(seconds)


def status_changed(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Whether writing `wanted` would change anything in `current` (ignores untouched keys)."""
    current = current or {}
    return any(current.get(k) != v for k, v in wanted.items())


def report_patch(uid: str | None, report: TaskReport) -> Obj:
    """A merge patch replacing only the drain report of a pod."""
    meta: Obj = {"annotations": {DRAIN_REPORT_ANNOTATION: report_json(report)}}
    if uid:
        meta["uid"] = uid
    return {"metadata": meta}


def drain_entries(pods: Iterable[PodView]) -> list[Obj]:
    """`status.draining` of the autoscaler: one entry per pod that is not simply serving."""
    out: list[Obj] = []
    for pod in sorted(pods, key=lambda p: p.name):
        record = pod.drain
        if record.step == DrainStep.SERVING:
            continue
        since = record.since if record.since is not None else pod.created_at
        entry: Obj = {"pod": pod.name, "step": record.step.value, "since": rfc3339(since)}
        if record.report is not None:
            entry["active"] = record.report.active
            entry["reserved"] = record.report.reserved
            entry["reportedAt"] = rfc3339(record.report.at)
        out.append(entry)
    return out
