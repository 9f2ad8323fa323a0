"""The ElasticWorker controller against a real kube-apiserver, pods run by the node agent, the
operator as a subprocess with only its ClusterRole."""

from __future__ import annotations

import pytest
from e2e.helpers import wait_for
from kubernetes import client
from kubernetes.client.rest import ApiException

from controllers.kube.views import INDEX_ANNOTATION, OWNER_LABEL

from .helpers import (
    add_scale,
    condition,
    create,
    elastic_worker,
    get_ew,
    live_pods,
    patch_ew,
    pods_of,
    running_names,
)

pytestmark = pytest.mark.controlplane


def test_crds_reject_invalid_resources(crds, custom, namespace) -> None:
    """The schema and its CEL rules, served by the API server itself."""
    bad_range = elastic_worker("bad-range", min_replicas=4, max_replicas=2)
    with pytest.raises(ApiException) as caught:
        create(custom, namespace, bad_range)
    assert caught.value.status == 422
    assert "minReplicas must be less than or equal to maxReplicas" in caught.value.body

    bad_policy = elastic_worker("bad-policy")
    bad_policy["spec"]["scaleInPolicy"] = {"name": "selector"}
    with pytest.raises(ApiException) as caught:
        create(custom, namespace, bad_policy)
    assert caught.value.status == 422
    assert "selector is required" in caught.value.body

    bad_name = elastic_worker("bad-name", policy="sometimes")
    with pytest.raises(ApiException) as caught:
        create(custom, namespace, bad_name)
    assert caught.value.status == 422


def test_keeps_min_follows_scale_respects_max(
    start_operator, custom, core_v1: client.CoreV1Api, node_agent, namespace
) -> None:
    operator = start_operator()
    create(
        custom,
        namespace,
        elastic_worker("w", min_replicas=2, max_replicas=5, annotations={"team": "data"}),
    )
    names = wait_for(
        lambda: (n := running_names(core_v1, namespace, "w")) == ["w-0", "w-1"] and n,
        timeout=30,
        what="two running pods (minReplicas)",
    )
    pod = core_v1.read_namespaced_pod(names[0], namespace)
    assert pod.metadata.labels == {"app": "w", OWNER_LABEL: "w"}
    assert pod.metadata.annotations["team"] == "data"  # template annotations are copied
    assert pod.metadata.annotations[INDEX_ANNOTATION] == "0"
    [owner] = pod.metadata.owner_references
    assert (owner.kind, owner.name, owner.controller, owner.block_owner_deletion) == (
        "ElasticWorker",
        "w",
        True,
        True,
    )

    # Two scale writes accumulate: each is folded into spec.replicas and reset to 0.
    add_scale(custom, namespace, "w", 1)
    add_scale(custom, namespace, "w", 1)
    wait_for(lambda: len(running_names(core_v1, namespace, "w")) == 4, 30, what="4 running pods")
    ew = get_ew(custom, namespace, "w")
    assert ew["spec"]["replicas"] == 4 and ew["spec"]["scale"] == 0

    # Beyond max: clamped.
    add_scale(custom, namespace, "w", 7)
    wait_for(lambda: get_ew(custom, namespace, "w")["spec"]["scale"] == 0, 30, what="consumed")
    wait_for(lambda: len(running_names(core_v1, namespace, "w")) == 5, 30, what="5 running pods")
    ew = get_ew(custom, namespace, "w")
    assert ew["spec"]["replicas"] == 5
    status = ew["status"]
    assert status["desiredReplicas"] == 5
    wait_for(
        lambda: (
            (s := get_ew(custom, namespace, "w")["status"])["readyReplicas"] == 5
            and condition({"status": s}, "Ready")["status"] == "True"
        ),
        30,
        what="Ready with 5 ready replicas",
    )
    status = get_ew(custom, namespace, "w")["status"]
    assert status["replicas"] == 5 and status["objectStatus"] == "Valid"
    assert status["selector"] == f"{OWNER_LABEL}=w"
    assert status["nextPodIndex"] == 5
    assert status["observedGeneration"] == ew["metadata"]["generation"]
    assert len(live_pods(core_v1, namespace, "w")) == 5  # never more than max

    # Selector policy: lowering replicas deletes nothing until pods are marked.
    patch_ew(custom, namespace, "w", {"spec": {"replicas": 3}})
    wait_for(
        lambda: get_ew(custom, namespace, "w")["status"].get("desiredReplicas") == 3,
        30,
        what="desired 3",
    )
    assert len(live_pods(core_v1, namespace, "w")) == 5
    core_v1.patch_namespaced_pod("w-4", namespace, {"metadata": {"labels": {"delete": "true"}}})
    wait_for(
        lambda: "w-4" not in [p.metadata.name for p in live_pods(core_v1, namespace, "w")],
        30,
        what="the marked pod deleted",
    )
    assert len(live_pods(core_v1, namespace, "w")) == 4
    assert operator.alive(), operator.log()
    log = operator.log()
    assert "Forbidden" not in log and "403" not in log and "permission" not in log.lower(), log


def test_replaces_failed_pods_and_cleans_them_up(
    start_operator, custom, core_v1: client.CoreV1Api, node_agent, namespace
) -> None:
    # The first pod's worker exits 1 at once; its replacements run.
    script = (
        "import os, signal, sys, time\n"
        "if os.environ['POD_NAME'].endswith('-0'): sys.exit(1)\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        "while True: time.sleep(1)\n"
    )
    start_operator()
    create(custom, namespace, elastic_worker("f", min_replicas=2, max_replicas=3, script=script))
    wait_for(
        lambda: (n := running_names(core_v1, namespace, "f")) and len(n) == 2 and "f-0" not in n,
        timeout=40,
        what="two running pods after the failed one was replaced",
    )
    wait_for(
        lambda: "f-0" not in [p.metadata.name for p in pods_of(core_v1, namespace, "f")],
        timeout=30,
        what="the failed pod removed",
    )
    record = node_agent.record(namespace, "f-0")
    assert record is not None and record.exit_code == 1
    assert all(p.status.phase != "Failed" for p in pods_of(core_v1, namespace, "f"))
    ew = get_ew(custom, namespace, "f")
    assert ew["spec"]["replicas"] == 2


def test_invalid_resource_gets_condition_and_nothing_else(
    start_operator, custom, core_v1: client.CoreV1Api, node_agent, namespace
) -> None:
    """A rule only the Python validation knows: the selector must match the template."""
    start_operator()
    body = elastic_worker(
        "inv", replicas=3, selector={"matchLabels": {"app": "other"}}, labels={"app": "inv"}
    )
    create(custom, namespace, body)
    ew = wait_for(
        lambda: (
            (o := get_ew(custom, namespace, "inv")).get("status", {}).get("objectStatus")
            == "InValid"
            and o
        ),
        timeout=30,
        what="InValid status",
    )
    invalid = condition(ew, "Invalid")
    assert invalid is not None and invalid["status"] == "True"
    assert "spec.selector" in invalid["message"]
    assert ew["spec"]["replicas"] == 3  # nothing lost
    assert pods_of(core_v1, namespace, "inv") == []

    patch_ew(custom, namespace, "inv", {"spec": {"selector": {"matchLabels": {"app": "inv"}}}})
    wait_for(lambda: len(running_names(core_v1, namespace, "inv")) == 3, 30, what="3 pods")
    ew = get_ew(custom, namespace, "inv")
    assert ew["status"]["objectStatus"] == "Valid"
    assert condition(ew, "Invalid")["status"] == "False"
