"""The ElasticWorkerAutoscaler controller against a real kube-apiserver, load from a private
Redis in the collector's key layout."""

from __future__ import annotations

import time

import pytest
import redis
from e2e.helpers import wait_for
from kubernetes import client

from controllers.core.types import Reading
from controllers.metrics.store import MetricStore, cluster_key

from .helpers import autoscaler, condition, create, elastic_worker, get_ew, get_ewa, running_names

pytestmark = pytest.mark.controlplane


def test_scales_out_on_high_load_and_holds_when_missing_or_stale(
    start_operator, custom, core_v1: client.CoreV1Api, node_agent, namespace, redis_server
) -> None:
    store = MetricStore(redis.Redis.from_url(redis_server.url), ttl=300)
    key = cluster_key(namespace, "a", "total_cluster_load")
    start_operator("--redis-url", redis_server.url, "--sync-period", "1")
    create(custom, namespace, elastic_worker("a", min_replicas=1, max_replicas=4, replicas=1))
    create(custom, namespace, autoscaler("a-scaler", "a", target_value=60, max_age=10))
    wait_for(lambda: running_names(core_v1, namespace, "a") == ["a-0"], 30, what="one pod")

    def ready_reason() -> str | None:
        cond = condition(get_ewa(custom, namespace, "a-scaler"), "Ready")
        return cond["reason"] if cond else None

    # Missing: unknown, hold.
    wait_for(lambda: ready_reason() == "LoadUnknown", 20, what="LoadUnknown with no reading")
    time.sleep(3)  # three more syncs
    assert get_ew(custom, namespace, "a")["spec"]["replicas"] == 1
    status = get_ewa(custom, namespace, "a-scaler")["status"]
    assert status["desiredReplicas"] == 1 and "currentLoad" not in status

    # Stale (older than maxAgeSeconds): still unknown, never a number, hold.
    store.put(key, Reading(100.0, time.time() - 120, workers=1))
    time.sleep(4)
    assert ready_reason() == "LoadUnknown"
    assert get_ew(custom, namespace, "a")["spec"]["replicas"] == 1
    assert running_names(core_v1, namespace, "a") == ["a-0"]

    # Fresh and above the target: ceil(1 * 100 / 60) = 2.
    store.put(key, Reading(100.0, time.time(), workers=1))
    wait_for(lambda: get_ew(custom, namespace, "a")["spec"]["replicas"] == 2, 20, what="scale")
    wait_for(lambda: len(running_names(core_v1, namespace, "a")) == 2, 30, what="two pods")
    status = get_ewa(custom, namespace, "a-scaler")["status"]
    assert status["currentLoad"] == 100
    assert status["desiredReplicas"] == 2
    assert status["lastScaleTime"] and status["loadTimestamp"]
    assert status["observedGeneration"] == 1
    assert condition({"status": status}, "Ready")["status"] == "True"
    assert condition({"status": status}, "Invalid")["status"] == "False"
    assert condition({"status": status}, "MarkedPodsDeletable")["status"] == "True"

    # The reading goes stale again: hold at 2, do not fall back.
    store.put(key, Reading(0.0, time.time() - 60, workers=2))
    time.sleep(3)
    assert get_ew(custom, namespace, "a")["spec"]["replicas"] == 2
    assert len(running_names(core_v1, namespace, "a")) == 2


def test_autoscaler_invalid_or_mismatched_gets_conditions(
    start_operator, custom, core_v1: client.CoreV1Api, node_agent, namespace
) -> None:
    start_operator("--sync-period", "1")
    create(
        custom, namespace, elastic_worker("m", min_replicas=1, max_replicas=2, policy="immediate")
    )
    create(custom, namespace, autoscaler("m-scaler", "m"))
    # Passes the CRD's pattern, not the Python check (no host).
    bad = autoscaler("m-bad", "m", hook="http://:5559/x")
    create(custom, namespace, bad)

    def cond(name: str, kind: str) -> dict | None:
        return condition(get_ewa(custom, namespace, name), kind)

    mismatch = wait_for(
        lambda: (c := cond("m-scaler", "MarkedPodsDeletable")) and c["status"] == "False" and c,
        20,
        what="the policy mismatch condition",
    )
    assert "immediate" in mismatch["message"]
    invalid = wait_for(
        lambda: (c := cond("m-bad", "Invalid")) and c["status"] == "True" and c,
        20,
        what="Invalid condition",
    )
    assert "spec.scaleInSpec.shutdownHttpHook" in invalid["message"]

    create(custom, namespace, autoscaler("m-orphan", "nothing-here"))
    missing = wait_for(
        lambda: (c := cond("m-orphan", "Ready")) and c["status"] == "False" and c,
        20,
        what="TargetNotFound",
    )
    assert missing["reason"] == "TargetNotFound"
