"""Readings in a real private Redis: timestamps, TTLs, missing is None; the wire format."""

from __future__ import annotations

import time

import pytest
import redis as redis_lib

from controllers.core.types import Reading
from controllers.metrics import store, wire
from controllers.metrics.collector import PrometheusMetrics, RedisPublisher
from controllers.metrics.membership import RedisMembership
from controllers.metrics.model import LoadModel
from controllers.metrics.source import RedisMetrics
from harness.services import RedisServer


def test_round_trip_keeps_the_sample_time_and_workers(redis_client: redis_lib.Redis) -> None:
    metrics = store.MetricStore(redis_client)
    key = store.cluster_key("ns", "ew")
    metrics.put(key, Reading(50.0, 1234.5, workers=2))
    assert metrics.get(key) == Reading(50.0, 1234.5, workers=2)
    assert 0 < redis_client.ttl(key) <= store.DEFAULT_TTL


def test_a_value_expires_and_then_reads_as_none(redis_client: redis_lib.Redis) -> None:
    metrics = store.MetricStore(redis_client, ttl=1)
    key = store.pod_key("ns", "pod-a")
    at = time.time()
    metrics.put(key, Reading(0.0, at))
    assert metrics.get(key) == Reading(0.0, at)
    time.sleep(1.2)
    assert metrics.get(key) is None  # gone, not a frozen 0


def test_missing_or_garbage_is_none_never_zero(redis_client: redis_lib.Redis) -> None:
    metrics = store.MetricStore(redis_client)
    assert metrics.get(store.pod_key("ns", "nobody")) is None
    redis_client.set(store.pod_key("ns", "legacy"), "0")  # the prototype's untimed value
    assert metrics.get(store.pod_key("ns", "legacy")) is None
    redis_client.set(store.pod_key("ns", "junk"), "{not json")
    assert metrics.get(store.pod_key("ns", "junk")) is None


def test_members_and_pod_key_scan(redis_client: redis_lib.Redis) -> None:
    assert store.decode_members(store.encode_members(["b", "a", "a"], 1.0)) == {"a", "b"}
    assert store.decode_members(None) is None
    assert store.decode_members("[1, 2]") is None
    for pod in ("w-1", "w-2", "odd[pod]*"):
        redis_client.set(store.pod_key("ns", pod), "x")
    redis_client.set(store.pod_key("other", "w-3"), "x")
    redis_client.set(store.pod_key("ns", "w-1", "active_tasks"), "x")
    keys = redis_client.scan_iter(match=store.pod_key_pattern("ns"))
    assert sorted(store.pod_from_key(k, "ns") for k in keys) == ["odd[pod]*", "w-1", "w-2"]
    assert store.pod_from_key("elastic-airflow/ns/pods/a/b/load", "ns") is None


def test_publisher_writes_timestamped_expiring_keys_and_drops_gone_pods(
    redis_client: redis_lib.Redis,
) -> None:
    model = LoadModel()
    for host in ("celery@w-a", "celery@w-b"):
        model.apply({"type": "worker-online", "hostname": host, "freq": 2.0}, 100.0)
    model.apply({"type": "task-received", "hostname": "celery@w-a", "uuid": "t0"}, 100.0)
    model.apply({"type": "task-started", "hostname": "celery@w-a", "uuid": "t1"}, 100.0)
    publisher = RedisPublisher(redis_client, "ns", "ew", ttl=30)
    prom = PrometheusMetrics()
    snap = model.snapshot(100.5)
    publisher.publish(snap, None)
    prom.show("ew", snap)

    read = store.MetricStore(redis_client)
    assert read.get(store.cluster_key("ns", "ew")) == Reading(25.0, 100.5, workers=2)
    assert read.get(store.cluster_key("ns", "ew", "alive_workers")) == Reading(2.0, 100.5, 2)
    assert read.get(store.pod_key("ns", "w-a")) == Reading(50.0, 100.5)
    assert read.get(store.pod_key("ns", "w-a", "active_tasks")) == Reading(1.0, 100.5)
    assert read.get(store.pod_key("ns", "w-a", "reserved_tasks")) == Reading(1.0, 100.5)
    assert read.get(store.pod_key("ns", "w-b")) == Reading(0.0, 100.5)
    assert 0 < redis_client.pttl(store.pod_key("ns", "w-a")) <= 30_000
    members = RedisMembership(redis_client, "ns", "ew")
    assert members.refresh() and members.known() == {"w-a", "w-b"}
    assert prom.registry.get_sample_value("elastic_airflow_cluster_load", {"elasticworker": "ew"})
    assert prom.registry.get_sample_value("elastic_airflow_alive_workers") == 2

    model.apply({"type": "worker-offline", "hostname": "celery@w-b"}, 101.0)
    snap = model.snapshot(101.0)
    publisher.publish(snap, None)
    prom.show("ew", snap)
    assert read.get(store.pod_key("ns", "w-b")) is None  # gone at once, not after the TTL
    assert read.get(store.cluster_key("ns", "ew")) == Reading(50.0, 101.0, workers=1)
    assert prom.registry.get_sample_value("elastic_airflow_worker_load", {"pod": "w-b"}) is None


def test_zero_workers_are_published_as_zero_over_zero(redis_client: redis_lib.Redis) -> None:
    publisher = RedisPublisher(redis_client, "ns", "ew", ttl=30)
    publisher.publish(LoadModel().snapshot(7.0), frozenset())
    got = store.MetricStore(redis_client).get(store.cluster_key("ns", "ew"))
    assert got == Reading(0.0, 7.0, workers=0)


def test_redis_metrics_source(redis_server: RedisServer, redis_client: redis_lib.Redis) -> None:
    metrics = store.MetricStore(redis_client)
    metrics.put(store.cluster_key("ns", "ew"), Reading(60.0, 5.0, workers=3))
    metrics.put(store.pod_key("ns", "w-a"), Reading(100.0, 5.0))
    source = RedisMetrics(redis_server.url)
    try:
        assert source.cluster_load("ns", "ew") == Reading(60.0, 5.0, workers=3)
        assert source.cluster_load("ns", "missing") is None
        assert source.pod_load("ns", "w-a") == Reading(100.0, 5.0)
        assert source.pod_load("ns", "w-b") is None
        assert source.pod_loads("ns", ["w-a", "w-b"]) == {"w-a": Reading(100.0, 5.0), "w-b": None}
    finally:
        source.close()


def test_redis_metrics_source_when_redis_is_down_reads_unknown() -> None:
    source = RedisMetrics("redis://127.0.0.1:1/0", timeout=0.5)
    assert source.cluster_load("ns", "ew") is None
    assert source.pod_loads("ns", ["a"]) == {"a": None}


@pytest.mark.parametrize(
    ("value", "text"), [(60, "60"), (60.0, "60"), (0.6, "600m"), (33.3334, "33333m"), (0, "0")]
)
def test_quantities(value: float, text: str) -> None:
    assert wire.format_quantity(value) == text
    assert wire.parse_quantity(text) == pytest.approx(value, abs=1e-3)


@pytest.mark.parametrize(
    ("text", "value"), [("1k", 1000), ("1Ki", 1024), ("1.5", 1.5), ("2e3", 2000), ("250u", 2.5e-4)]
)
def test_parse_more_quantities(text: str, value: float) -> None:
    assert wire.parse_quantity(text) == pytest.approx(value)


def test_bad_quantity() -> None:
    with pytest.raises(ValueError):
        wire.parse_quantity("12 apples")


def test_rfc3339_round_trip_to_the_millisecond() -> None:
    at = 1_700_000_000.123456
    text = wire.rfc3339(at)
    assert text == "2023-11-14T22:13:20.123Z"
    assert wire.parse_rfc3339(text) == pytest.approx(at, abs=1e-3)
    assert wire.parse_rfc3339("2023-11-14T22:13:20Z") == 1_700_000_000
    assert wire.parse_rfc3339("2023-11-14T23:13:20+01:00") == 1_700_000_000
