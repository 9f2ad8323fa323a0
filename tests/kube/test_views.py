"""The pure conversions between Kubernetes objects and the core's values."""

from __future__ import annotations

import json
from typing import Any

from controllers.api import convert, validate_elastic_worker, validate_elastic_worker_autoscaler
from controllers.core.types import DrainStep, Phase, Reading, TaskReport
from controllers.core.workerset import NewPod
from controllers.hook.client import PodReply
from controllers.kube import views
from controllers.kube.hook import base_url, hook_reply
from controllers.kube.views import (
    DRAIN_REPORT_ANNOTATION,
    DRAIN_SINCE_ANNOTATION,
    DRAIN_STEP_ANNOTATION,
    INDEX_ANNOTATION,
    OWNER_LABEL,
)

from .helpers import autoscaler, elastic_worker


def served(body: dict[str, Any], uid: str = "uid-1") -> dict[str, Any]:
    """A manifest as the API server returns it."""
    out = json.loads(json.dumps(body))
    out["metadata"].update(namespace="ns", uid=uid, resourceVersion="7", generation=2)
    out["status"] = {"someKeyAnOlderOperatorWrote": 1}
    return out


def pod(name: str, **meta: Any) -> dict[str, Any]:
    phase = meta.pop("phase", "Running")
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": "2024-05-01T12:00:00Z",
            "labels": {OWNER_LABEL: "w"},
            "ownerReferences": [
                {"kind": "ElasticWorker", "name": "w", "uid": "uid-1", "controller": True}
            ],
            **meta,
        },
        "status": {"phase": phase},
    }


def test_worker_set_spec_from_the_model() -> None:
    ew = validate_elastic_worker(
        views.manifest_without_status(served(elastic_worker("w", replicas=3)))
    )
    spec = convert.workerset_spec(ew)
    assert (spec.name, spec.min_replicas, spec.max_replicas, spec.replicas, spec.scale) == (
        "w",
        2,
        5,
        3,
        0,
    )
    assert spec.policy == "selector" and spec.policy_selector == {"delete": "true"}
    assert spec.labels == {"app": "w"}


def test_autoscaler_spec_takes_bounds_from_the_target() -> None:
    ew = validate_elastic_worker(elastic_worker("w", min_replicas=1, max_replicas=7))
    ewa = validate_elastic_worker_autoscaler(autoscaler("s", "w", target_value=50, back_off=0))
    spec = convert.autoscaler_spec(ewa, ew)
    assert (spec.target, spec.min_replicas, spec.max_replicas) == (50.0, 1, 7)
    assert spec.back_off == 30.0  # 0 means the prototype's 30 s
    assert spec.mark_label == {"delete": "true"}
    assert views.policy_mismatch(ewa, ew) is None
    immediate = validate_elastic_worker(elastic_worker("w", policy="immediate"))
    assert "immediate" in (views.policy_mismatch(ewa, immediate) or "")


def test_pod_view_reads_phase_index_and_drain_record() -> None:
    report = {"active": 0, "reserved": 1, "at": 1714564805.5}
    raw = pod(
        "w-3",
        annotations={
            INDEX_ANNOTATION: "3",
            DRAIN_STEP_ANNOTATION: "cordoned",
            DRAIN_SINCE_ANNOTATION: "2024-05-01T12:00:05.250000Z",
            DRAIN_REPORT_ANNOTATION: json.dumps(report),
        },
    )
    view = views.pod_view(raw, load=Reading(0, 10.0))
    assert view.name == "w-3" and view.index == 3 and view.phase == Phase.RUNNING
    assert view.created_at == 1714564800.0
    assert view.drain.step == DrainStep.CORDONED
    assert view.drain.since == 1714564805.25
    assert view.drain.report == TaskReport(0, 1, 1714564805.5)
    assert view.load == Reading(0, 10.0)
    assert view.live and not view.deleting


def test_pod_view_is_forgiving_about_bad_annotations() -> None:
    raw = pod(
        "w-x",
        phase="Unknown",
        deletionTimestamp="2024-05-01T12:01:00Z",
        annotations={
            INDEX_ANNOTATION: "many",
            DRAIN_STEP_ANNOTATION: "evaporated",
            DRAIN_REPORT_ANNOTATION: "{not json",
        },
    )
    view = views.pod_view(raw)
    assert view.index == 0
    assert view.drain.step == DrainStep.SERVING and view.drain.report is None
    assert view.phase == Phase.RUNNING and view.deleting and not view.live
    assert views.parse_report(json.dumps({"active": -1, "reserved": 0, "at": 1})) is None


def test_ownership_needs_label_and_controller_reference() -> None:
    assert views.is_owned_by(pod("w-0"), "w", "uid-1")
    assert not views.is_owned_by(pod("w-0"), "w", "another-uid")
    orphan = pod("w-0")
    orphan["metadata"]["ownerReferences"] = []
    assert not views.is_owned_by(orphan, "w", "uid-1")
    stranger = pod("w-0")
    stranger["metadata"]["labels"] = {OWNER_LABEL: "v"}
    assert not views.is_owned_by(stranger, "w", "uid-1")


def test_new_pod_manifest_copies_template_labels_and_annotations() -> None:
    body = served(elastic_worker("w", annotations={"prometheus.io/scrape": "true"}))
    model = validate_elastic_worker(views.manifest_without_status(body))
    manifest = views.new_pod_manifest(body, model, NewPod("w-4", 4))
    meta = manifest["metadata"]
    assert meta["name"] == "w-4" and meta["namespace"] == "ns"
    assert meta["labels"] == {"app": "w", OWNER_LABEL: "w"}
    assert meta["annotations"] == {"prometheus.io/scrape": "true", INDEX_ANNOTATION: "4"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "elasticcluster.sarweshsuman.com/v1",
            "kind": "ElasticWorker",
            "name": "w",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert manifest["spec"] == body["spec"]["template"]["spec"]
    assert manifest["spec"] is not body["spec"]["template"]["spec"]


def test_drain_patch_round_trips_through_pod_view() -> None:
    report = TaskReport(active=1, reserved=0, at=1714564805.123456)
    patch = views.drain_patch("uid-9", DrainStep.CORDONED, 1714564805.123456, report)
    assert patch["metadata"]["uid"] == "uid-9"
    raw = pod("w-0", annotations=patch["metadata"]["annotations"])
    record = views.pod_view(raw).drain
    assert record.step == DrainStep.CORDONED
    assert abs(record.since - 1714564805.123456) < 1e-6
    assert record.report == report
    assert record.report.at >= record.since  # microseconds kept: verified_idle compares them

    serving = views.drain_patch(None, DrainStep.SERVING, None)
    assert serving["metadata"]["annotations"][DRAIN_SINCE_ANNOTATION] is None  # removed
    assert serving["metadata"]["annotations"][DRAIN_REPORT_ANNOTATION] is None
    marked = views.drain_patch("u", DrainStep.MARKED, 5.0, keep_report=True, labels={"d": "t"})
    assert DRAIN_REPORT_ANNOTATION not in marked["metadata"]["annotations"]
    assert marked["metadata"]["labels"] == {"d": "t"}


def test_conditions_keep_their_transition_time_while_unchanged() -> None:
    first = views.merge_conditions([], [views.condition("Ready", True, "Ok")], now=100.0)
    assert first[0]["lastTransitionTime"] == "1970-01-01T00:01:40Z"
    same = views.merge_conditions(first, [views.condition("Ready", True, "Ok", "x")], 200.0)
    assert same[0]["lastTransitionTime"] == "1970-01-01T00:01:40Z"
    flipped = views.merge_conditions(same, [views.condition("Ready", False, "No")], 300.0)
    assert flipped[0]["lastTransitionTime"] == "1970-01-01T00:05:00Z"
    kept = views.merge_conditions([{"type": "Other", "status": "True"}], [], 1.0)
    assert kept == [{"type": "Other", "status": "True"}]


def test_drain_entries_list_every_pod_not_serving() -> None:
    pods = [
        views.pod_view(pod("w-0")),
        views.pod_view(
            pod(
                "w-1",
                annotations=views.drain_patch(
                    None, DrainStep.CORDONED, 1714564805.0, TaskReport(0, 2, 1714564806.0)
                )["metadata"]["annotations"],
            )
        ),
    ]
    assert views.drain_entries(pods) == [
        {
            "pod": "w-1",
            "step": "cordoned",
            "since": "2024-05-01T12:00:05Z",
            "active": 0,
            "reserved": 2,
            "reportedAt": "2024-05-01T12:00:06Z",
        }
    ]


def test_status_changed_ignores_keys_it_does_not_write() -> None:
    assert not views.status_changed({"a": 1, "b": 2}, {"a": 1})
    assert views.status_changed({"a": 1}, {"a": 2})
    assert not views.status_changed({}, {"gone": None})


def test_time_parsing() -> None:
    assert views.parse_time("2024-05-01T12:00:00Z") == 1714564800.0
    assert views.parse_time("1714564800.5") == 1714564800.5
    assert views.parse_time(3) == 3.0
    assert views.parse_time("yesterday") is None
    assert views.parse_time(None) is None and views.parse_time(True) is None
    assert views.parse_time(views.format_micro(1714564800.25)) == 1714564800.25


def reply_from_dict(data: dict, cordon: bool = True):
    return hook_reply(PodReply.from_json(data), cordon)


def test_hook_reply_and_url_forms() -> None:
    reply = reply_from_dict(
        {"acknowledged": True, "active": 0, "reserved": 0, "at": 12.5, "consuming": []}
    )
    assert reply.ok and reply.report == TaskReport(0, 0, 12.5)
    failed = reply_from_dict({"acknowledged": False, "error": "no such worker"})
    assert not failed.ok and failed.report is None and failed.error == "no such worker"
    assert reply_from_dict({"acknowledged": True, "active": "1", "at": 1}).report is None
    # A worker that does not say what it consumes is not known to be cordoned.
    unsaid = reply_from_dict({"acknowledged": True, "active": 0, "reserved": 0, "at": 1.0})
    assert not unsaid.ok and unsaid.report is None
    assert base_url("http://hook:5559/api/worker/shutdown") == "http://hook:5559"
    assert base_url("https://hook.ns.svc/prefix/shutdownpods") == "https://hook.ns.svc/prefix"
    assert base_url("http://hook:5559/") == "http://hook:5559"


def test_a_worker_consuming_again_gives_no_report() -> None:
    reply = reply_from_dict(
        {"acknowledged": True, "active": 0, "reserved": 0, "at": 3.0, "consuming": ["default"]},
        cordon=False,
    )
    assert reply.consuming_again and reply.report is None
    cordoned = reply_from_dict(
        {"acknowledged": True, "active": 0, "reserved": 0, "at": 3.0, "consuming": []},
        cordon=False,
    )
    assert not cordoned.consuming_again and cordoned.report == TaskReport(0, 0, 3.0)
