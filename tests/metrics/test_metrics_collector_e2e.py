"""End to end: real RabbitMQ, real tinyapp Celery workers, the collector as a subprocess, Redis.

Two workers of ElasticWorker `workers` (pods `workers-a`, `workers-b`, 2 slots each) and one
worker of another ElasticWorker (`other-c`, on another queue) that must not be counted. Two tasks
of 12 s -> total_cluster_load 50 within a few seconds, with a fresh sample time; 0 after they end;
the Prometheus endpoint says the same; a worker that leaves drops out at once; when the collector
stops, its values expire instead of freezing.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis as redis_lib

from controllers.core.types import Reading
from controllers.metrics import store
from harness.e2e.tinyapp import WORK_TASK, TinyWorker, make_app, read_lines
from harness.services import RabbitMQServer, RedisServer, free_port

from .helpers import http_get, prometheus_samples, start_module, wait_for

NS, EW = "e2e", "workers"
TTL = 3.0


def _cluster(client: redis_lib.Redis) -> Reading | None:
    return store.decode(client.get(store.cluster_key(NS, EW)))


def _pod(client: redis_lib.Redis, pod: str, metric: str = "load") -> Reading | None:
    return store.decode(client.get(store.pod_key(NS, pod, metric)))


def _prometheus(port: int) -> dict:
    status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200, body
    return prometheus_samples(body.decode())


def _gauge(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


TASK_SECONDS = 12


def test_two_tasks_on_two_workers_read_50_then_0(
    rabbitmq_server: RabbitMQServer,
    redis_server: RedisServer,
    redis_client: redis_lib.Redis,
    tmp_path: Path,
) -> None:
    broker = rabbitmq_server.url
    out = tmp_path / "out.txt"
    metrics_port = free_port()
    with (
        TinyWorker("workers-a", broker, log_dir=tmp_path) as worker_a,
        TinyWorker("workers-b", broker, log_dir=tmp_path) as worker_b,
        TinyWorker("other-c", broker, queues=("other",), log_dir=tmp_path),
    ):
        collector = start_module(
            "collector",
            "controllers.metrics.collector",
            [
                "--broker-url", broker,
                "--redis-url", redis_server.url,
                "--namespace", NS,
                "--elasticworker", EW,
                "--pod-prefix", f"{EW}-",
                "--interval", "1",
                "--concurrency", "1",  # wrong on purpose: the workers' own pool size must win
                "--ttl", str(TTL),
                "--metrics-host", "127.0.0.1",
                "--metrics-port", str(metrics_port),
                "--queue", "default",
            ],
            tmp_path,
        )  # fmt: skip
        try:
            # Both workers known, nothing running: 0 over 2 workers (the outsider not counted).
            idle = wait_for(
                lambda: (r := _cluster(redis_client)) and r.workers == 2 and r,
                timeout=20,
                what="an idle reading over 2 workers",
                process=collector,
            )
            assert idle.value == 0
            wait_for(
                lambda: (
                    (s := _prometheus(metrics_port))
                    and all(
                        _gauge(s, "elastic_airflow_worker_concurrency", pod=p) == 2
                        for p in ("workers-a", "workers-b")
                    )
                ),
                timeout=10,
                what="each worker's pool size (inspect stats)",
                process=collector,
            )

            app = make_app(broker)
            sent_at = time.time()
            for _ in range(2):
                app.send_task(WORK_TASK, (TASK_SECONDS, str(out)), queue="default")
            busy = wait_for(
                lambda: (r := _cluster(redis_client)) and r.value == 50 and r,
                # Long enough for a loaded machine to start both tasks; they overlap for sure.
                timeout=TASK_SECONDS - 2,
                interval=0.01,
                what="total_cluster_load 50",
                process=collector,
            )
            seen_at = time.time()
            assert busy.workers == 2
            assert seen_at - busy.at < 2.0, "the sample time is fresh"
            actives = {p: _pod(redis_client, p, "active_tasks") for p in ("workers-a", "workers-b")}
            assert all(r is not None for r in actives.values())
            assert sum(r.value for r in actives.values() if r) == 2
            assert _pod(redis_client, "other-c") is None, "another ElasticWorker's pod"

            samples = wait_for(
                lambda: (
                    (s := _prometheus(metrics_port))
                    and _gauge(s, "elastic_airflow_cluster_load", elasticworker=EW) == 50
                    and s
                ),
                timeout=3,
                what="the Prometheus cluster load",
            )
            assert _gauge(samples, "elastic_airflow_alive_workers") == 2
            assert (
                sum(
                    _gauge(samples, "elastic_airflow_worker_active_tasks", pod=p) or 0
                    for p in ("workers-a", "workers-b")
                )
                == 2
            )
            for pod in ("workers-a", "workers-b"):
                redis_load = _pod(redis_client, pod)
                assert redis_load is not None
                assert _gauge(samples, "elastic_airflow_worker_load", pod=pod) == redis_load.value
                assert _gauge(samples, "elastic_airflow_worker_reserved_tasks", pod=pod) == 0
            assert _gauge(samples, "elastic_airflow_queue_depth", queue="default") == 0

            # Latency: from the later task start (the task's own clock) to the sample in Redis.
            lines = wait_for(
                lambda: len(read_lines(out)) == 2, timeout=2 * TASK_SECONDS, what="both tasks done"
            )
            assert lines
            starts = [float(line.split()[2]) for line in out.read_text().splitlines()]
            latency = busy.at - max(starts)
            print(
                f"\nsend->50 seen in redis: {seen_at - sent_at:.3f} s; "
                f"task start -> sample: {latency * 1000:.1f} ms"
            )

            done = wait_for(
                lambda: (r := _cluster(redis_client)) and r.value == 0 and r,
                timeout=5,
                what="total_cluster_load back to 0",
                process=collector,
            )
            assert done.workers == 2
            assert time.time() - done.at < 2.0
            samples = _prometheus(metrics_port)
            assert _gauge(samples, "elastic_airflow_cluster_load", elasticworker=EW) == 0
            hist_sum = _gauge(samples, "elastic_airflow_collector_event_to_redis_seconds_sum")
            hist_count = _gauge(samples, "elastic_airflow_collector_event_to_redis_seconds_count")
            assert hist_count and hist_count > 0
            print(
                f"event->redis (collector histogram): mean {1000 * hist_sum / hist_count:.1f} ms "
                f"over {int(hist_count)} events"
            )

            # A worker that leaves (warm shutdown -> worker-offline) drops out at once.
            worker_b.stop()
            one = wait_for(
                lambda: (r := _cluster(redis_client)) and r.workers == 1 and r,
                timeout=5,
                what="one worker left",
                process=collector,
            )
            assert one.value == 0
            assert _pod(redis_client, "workers-b") is None
            assert worker_a.alive
        finally:
            collector.stop(10)

    # The collector is gone: its values expire (unknown), they do not freeze.
    time.sleep(TTL + 0.5)
    assert _cluster(redis_client) is None
    assert _pod(redis_client, "workers-a") is None
