"""The collector's publishing rules, with a fake clock, synthetic events and a real Redis."""

from __future__ import annotations

from typing import Any

import redis as redis_lib

from controllers.core.types import Reading
from controllers.metrics import store
from controllers.metrics.collector import (
    Collector,
    CollectorConfig,
    PrometheusMetrics,
    RedisPublisher,
)
from controllers.metrics.membership import PodMembership, PrefixMembership, RedisMembership
from controllers.metrics.model import LoadModel

NS, EW = "ns", "ew"


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Receiver:
    should_stop = False


def make(
    redis_client: redis_lib.Redis, membership: PodMembership | None = None
) -> tuple[Collector, Clock]:
    clock = Clock()
    collector = Collector(
        app=None,
        model=LoadModel(),
        membership=membership or PrefixMembership("ew-"),
        publisher=RedisPublisher(redis_client, NS, EW, ttl=30),
        metrics=PrometheusMetrics(),
        config=CollectorConfig(NS, EW, interval=1.0, queues=(), probe_concurrency=False),
        clock=clock,
    )
    return collector, clock


def connect(collector: Collector, clock: Clock) -> None:
    collector._connected_at = clock.now
    collector._receiver = Receiver()


def cluster(redis_client: redis_lib.Redis) -> Reading | None:
    return store.decode(redis_client.get(store.cluster_key(NS, EW)))


def event(kind: str, host: str = "celery@ew-a", **fields: Any) -> dict[str, Any]:
    return {"type": kind, "hostname": host, "freq": 2.0, **fields}


def test_nothing_is_written_while_the_stream_is_down_or_settling(
    redis_client: redis_lib.Redis,
) -> None:
    collector, clock = make(redis_client)
    collector.tick()
    collector.on_event(event("worker-online"))
    assert cluster(redis_client) is None  # not connected: unknown, not 0
    connect(collector, clock)
    collector.on_event(event("worker-heartbeat", "celery@ew-b"))
    assert cluster(redis_client) is None  # settling: other workers' heartbeats may be on the way
    clock.now += 1.0
    collector.tick()
    assert cluster(redis_client) == Reading(0.0, clock.now, workers=2)
    live, ready, _ = collector.health()
    assert live and ready


def test_every_changing_event_is_published_at_once(redis_client: redis_lib.Redis) -> None:
    collector, clock = make(redis_client)
    connect(collector, clock)
    clock.now += 1.0
    collector.on_event(event("worker-online"))
    clock.now += 0.25
    collector.on_event(event("task-started", uuid="t1"))
    assert cluster(redis_client) == Reading(50.0, clock.now, workers=1)
    assert store.decode(redis_client.get(store.pod_key(NS, "ew-a"))) == Reading(50.0, clock.now)
    # Another ElasticWorker's worker changes nothing of ours.
    collector.on_event(event("worker-online", "celery@other-1"))
    assert cluster(redis_client) == Reading(50.0, clock.now, workers=1)
    assert redis_client.get(store.pod_key(NS, "other-1")) is None


def test_members_from_redis_must_be_known_before_a_cluster_reading(
    redis_client: redis_lib.Redis,
) -> None:
    collector, clock = make(redis_client, RedisMembership(redis_client, NS, EW))
    connect(collector, clock)
    clock.now += 1.0
    collector.on_event(event("worker-online", "celery@pod-1"))
    collector.on_event(event("worker-online", "celery@pod-2"))
    collector.tick()
    assert cluster(redis_client) is None  # whose pods? unknown: write nothing
    redis_client.set(store.members_key(NS, EW), store.encode_members(["pod-1"], clock.now))
    collector.tick()
    assert cluster(redis_client) == Reading(0.0, clock.now, workers=1)
    # The collector does not overwrite a member list it reads.
    assert store.decode_members(redis_client.get(store.members_key(NS, EW))) == {"pod-1"}


def test_a_silent_stream_is_reconnected_before_workers_are_declared_gone(
    redis_client: redis_lib.Redis,
) -> None:
    collector, clock = make(redis_client)
    connect(collector, clock)
    clock.now += 1.0
    collector.on_event(event("worker-online"))
    receiver = collector._receiver
    clock.now += 10.0  # no heartbeat, no event at all
    collector.tick()
    assert receiver.should_stop, "the receiver is told to reconnect"
    assert not collector.connected
    assert cluster(redis_client) == Reading(0.0, clock.now - 10.0, workers=1)  # not rewritten
    # Reconnected (workers woken) and still nothing: now the worker is gone.
    connect(collector, clock)
    clock.now += 1.0
    collector.tick()
    assert cluster(redis_client) == Reading(0.0, clock.now, workers=0)
    assert redis_client.get(store.pod_key(NS, "ew-a")) is None
