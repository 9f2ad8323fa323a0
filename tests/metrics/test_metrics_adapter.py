"""The custom metrics API adapter over plain HTTP, as a subprocess, against a real private Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib
from kubernetes import client as k8s

from controllers.core.types import Reading
from controllers.metrics import store, wire
from controllers.metrics.membership import ELASTICWORKER_LABEL
from controllers.metrics.source import CustomMetricsApi
from harness.services import ManagedProcess, RedisServer, free_port

from .helpers import http_get, http_json, start_module, wait_for

NS = "airflow"
BASE = "/apis/custom.metrics.k8s.io/v1beta2"
EW_RES = "elasticworkers.elasticcluster.sarweshsuman.com"


@pytest.fixture(scope="module")
def adapter(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The adapter's base URL (`http://127.0.0.1:PORT`)."""
    port = free_port()
    proc: ManagedProcess = start_module(
        "adapter",
        "controllers.metrics.adapter",
        ["--redis-url", redis_server.url, "--port", str(port), "--plain-http"],
        Path(tmp_path_factory.mktemp("adapter")),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        ready = lambda: http_get(url + "/readyz")[0] == 200  # noqa: E731
        wait_for(ready, 20, what="adapter ready", process=proc)
        yield url
    finally:
        proc.stop(10)


def put(client: redis_lib.Redis, key: str, reading: Reading, ttl_ms: int = 60_000) -> None:
    client.set(key, store.encode(reading), px=ttl_ms)


def test_health(adapter: str, redis_client: redis_lib.Redis) -> None:
    assert http_get(adapter + "/healthz")[0] == 200
    assert http_get(adapter + "/readyz")[0] == 200


def test_discovery(adapter: str, redis_client: redis_lib.Redis) -> None:
    status, body = http_json(adapter + BASE)
    assert status == 200
    assert body["kind"] == "APIResourceList"
    assert body["groupVersion"] == "custom.metrics.k8s.io/v1beta2"
    names = {r["name"] for r in body["resources"]}
    assert {"pods/load", f"{EW_RES}/total_cluster_load"} <= names
    assert all(r["namespaced"] and r["kind"] == "MetricValueList" for r in body["resources"])
    status, group = http_json(adapter + "/apis/custom.metrics.k8s.io")
    assert status == 200 and group["preferredVersion"]["version"] == "v1beta2"


def test_pod_load_carries_the_sample_time_not_now(
    adapter: str, redis_client: redis_lib.Redis
) -> None:
    sampled = time.time() - 7.25
    put(redis_client, store.pod_key(NS, "worker-1"), Reading(60.0, sampled))
    status, body = http_json(f"{adapter}{BASE}/namespaces/{NS}/pods/worker-1/load")
    assert status == 200, body
    assert body["kind"] == "MetricValueList"
    assert body["apiVersion"] == "custom.metrics.k8s.io/v1beta2"
    (item,) = body["items"]
    assert item["describedObject"] == {
        "kind": "Pod",
        "namespace": NS,
        "name": "worker-1",
        "apiVersion": "/v1",
    }
    assert item["metric"]["name"] == "load"
    assert item["value"] == "60"
    assert item["timestamp"] == wire.rfc3339(sampled)
    assert wire.parse_rfc3339(item["timestamp"]) == pytest.approx(sampled, abs=1e-3)
    assert isinstance(item["windowSeconds"], int)


def test_elasticworker_total_cluster_load(adapter: str, redis_client: redis_lib.Redis) -> None:
    sampled = time.time() - 1
    put(redis_client, store.cluster_key(NS, "workers"), Reading(33.5, sampled, workers=3))
    put(redis_client, store.cluster_key(NS, "workers", "alive_workers"), Reading(3.0, sampled, 3))
    status, body = http_json(f"{adapter}{BASE}/namespaces/{NS}/{EW_RES}/workers/total_cluster_load")
    assert status == 200, body
    (item,) = body["items"]
    assert item["describedObject"]["kind"] == "ElasticWorker"
    assert item["describedObject"]["apiVersion"] == "elasticcluster.sarweshsuman.com/v1"
    assert item["describedObject"]["name"] == "workers"
    assert item["metric"]["name"] == "total_cluster_load"
    assert item["value"] == "33500m"
    assert item["timestamp"] == wire.rfc3339(sampled)


def test_missing_and_expired_are_404_never_0(adapter: str, redis_client: redis_lib.Redis) -> None:
    status, body = http_json(f"{adapter}{BASE}/namespaces/{NS}/pods/nobody/load")
    assert status == 404
    assert body["kind"] == "Status" and body["reason"] == "NotFound" and body["code"] == 404

    put(redis_client, store.cluster_key(NS, "short"), Reading(0.0, time.time()), ttl_ms=300)
    url = f"{adapter}{BASE}/namespaces/{NS}/{EW_RES}/short/total_cluster_load"
    assert http_json(url)[0] == 200
    time.sleep(0.5)
    status, body = http_json(url)
    assert status == 404 and body["reason"] == "NotFound"

    status, body = http_json(f"{adapter}{BASE}/namespaces/{NS}/pods/x/no_such_metric")
    assert status == 404 and body["kind"] == "Status"


def test_label_selector_list(adapter: str, redis_client: redis_lib.Redis) -> None:
    now = time.time()
    for pod, load in (("blue-1", 100.0), ("blue-2", 0.0), ("green-1", 50.0)):
        put(redis_client, store.pod_key(NS, pod), Reading(load, now))
    redis_client.set(store.members_key(NS, "blue"), store.encode_members(["blue-1", "blue-2"], now))
    pods = f"{adapter}{BASE}/namespaces/{NS}/pods/*/load"
    status, body = http_json(f"{pods}?labelSelector={ELASTICWORKER_LABEL}%3Dblue")
    assert status == 200, body
    got = {i["describedObject"]["name"]: i["value"] for i in body["items"]}
    assert got == {"blue-1": "100", "blue-2": "0"}

    status, body = http_json(f"{adapter}{BASE}/namespaces/{NS}/pods/*/load")
    assert {i["describedObject"]["name"] for i in body["items"]} == {"blue-1", "blue-2", "green-1"}

    status, body = http_json(f"{adapter}{BASE}/namespaces/{NS}/pods/*/load?labelSelector=app%3Dx")
    assert status == 400 and body["reason"] == "BadRequest"


def test_custom_metrics_api_client_reads_through_the_api(
    adapter: str, redis_client: redis_lib.Redis
) -> None:
    sampled = round(time.time() - 2, 3)
    put(redis_client, store.cluster_key(NS, "workers"), Reading(50.0, sampled, workers=2))
    put(redis_client, store.cluster_key(NS, "workers", "alive_workers"), Reading(2.0, sampled, 2))
    put(redis_client, store.pod_key(NS, "workers-a"), Reading(100.0, sampled))
    redis_client.set(store.members_key(NS, "workers"), store.encode_members(["workers-a"], sampled))
    configuration = k8s.Configuration()
    configuration.host = adapter
    with k8s.ApiClient(configuration) as api:
        source = CustomMetricsApi(api)
        assert source.cluster_load(NS, "workers") == Reading(50.0, sampled, workers=2)
        assert source.pod_load(NS, "workers-a") == Reading(100.0, sampled)
        assert source.pod_load(NS, "workers-b") is None
        assert source.cluster_load(NS, "nobody") is None
        assert source.pods_by_selector(NS, f"{ELASTICWORKER_LABEL}=workers") == {
            "workers-a": Reading(100.0, sampled)
        }
        assert source.pod_loads(NS, ["workers-a", "x"]) == {
            "workers-a": Reading(100.0, sampled),
            "x": None,
        }
