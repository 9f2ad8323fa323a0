"""The collector: Celery events -> per-pod and per-ElasticWorker load in Redis and Prometheus.

    python -m controllers.metrics.collector --broker-url amqp://... --redis-url redis://... \\
        --namespace airflow --elasticworker workers [--kubeconfig K | --in-cluster |
        --pods-from-redis | --pod-prefix P | --pods a,b | --all-pods]

It follows the broker's event stream (`app.events.Receiver`, the workers need `-E`), keeps a
`LoadModel`, and writes on every event that changes a number and at least every `--interval`
seconds, each value with the time it was sampled and a TTL (`controllers.metrics.store`):

- per pod: `load` = ceil(100 * active / concurrency), `active_tasks`, `reserved_tasks`;
- per ElasticWorker: `total_cluster_load` = ceil(100 * sum(active) / sum(concurrency)) over the
  live workers of its pods, and `alive_workers`; zero workers is a 0 over zero capacity
  (`workers: 0`), not an error;
- per queue: `depth` (messages ready, from a passive `queue_declare`).

It writes nothing while its event stream is down or settling, so the keys expire and readers see
"unknown" rather than a frozen value. Prometheus metrics and `/healthz`, `/readyz` are served on
`--metrics-port`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from controllers.core.types import Reading
from controllers.metrics import store
from controllers.metrics.membership import (
    AllPods,
    KubeLabelMembership,
    PodMembership,
    PrefixMembership,
    RedisMembership,
    StaticMembership,
)
from controllers.metrics.model import DEFAULT_FREQ, LoadModel, Snapshot

# How often a worker is asked its pool size before the default is kept for good.
PROBE_TRIES = 5
log = logging.getLogger("controllers.metrics.collector")

DEFAULT_INTERVAL = 3.0
DEFAULT_METRICS_PORT = 9808
SETTLE = 1.0  # after (re)connecting, wait this long for the woken workers' heartbeats


# --- outputs -------------------------------------------------------------------------------------


class PrometheusMetrics:
    """The exporter's gauges, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.worker_load = Gauge(
            "elastic_airflow_worker_load", "ceil(100 * active / concurrency)", ["pod"], registry=r
        )
        self.active = Gauge(
            "elastic_airflow_worker_active_tasks",
            "tasks started, not finished",
            ["pod"],
            registry=r,
        )
        self.reserved = Gauge(
            "elastic_airflow_worker_reserved_tasks",
            "tasks received (prefetched), not started",
            ["pod"],
            registry=r,
        )
        self.concurrency = Gauge(
            "elastic_airflow_worker_concurrency", "task slots of the worker", ["pod"], registry=r
        )
        self.cluster_load = Gauge(
            "elastic_airflow_cluster_load",
            "ceil(100 * sum(active) / sum(concurrency)) over the ElasticWorker's live workers",
            ["elasticworker"],
            registry=r,
        )
        self.cluster_timestamp = Gauge(
            "elastic_airflow_cluster_load_timestamp_seconds",
            "when the published cluster load was sampled (unix time)",
            ["elasticworker"],
            registry=r,
        )
        self.alive = Gauge(
            "elastic_airflow_alive_workers", "live workers of the ElasticWorker", registry=r
        )
        self.queue_depth = Gauge(
            "elastic_airflow_queue_depth", "messages ready in the queue", ["queue"], registry=r
        )
        self.queue_consumers = Gauge(
            "elastic_airflow_queue_consumers", "consumers of the queue", ["queue"], registry=r
        )
        self.events = Counter(
            "elastic_airflow_collector_events", "Celery events received", ["type"], registry=r
        )
        self.connected = Gauge(
            "elastic_airflow_collector_connected", "1 while the event stream is up", registry=r
        )
        self.redis_errors = Counter(
            "elastic_airflow_collector_redis_errors", "failed Redis writes", registry=r
        )
        self.latency = Histogram(
            "elastic_airflow_collector_event_to_redis_seconds",
            "from an event's creation on the worker to its effect written to Redis",
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self._pods: set[str] = set()
        self._queues: set[str] = set()

    def show(self, elastic_worker: str, snap: Snapshot) -> None:
        for pod in self._pods - set(snap.pods):
            for gauge in (self.worker_load, self.active, self.reserved, self.concurrency):
                _remove(gauge, pod)
        for pod, load in snap.pods.items():
            self.worker_load.labels(pod).set(load.load)
            self.active.labels(pod).set(load.active)
            self.reserved.labels(pod).set(load.reserved)
            self.concurrency.labels(pod).set(load.concurrency)
        self._pods = set(snap.pods)
        self.cluster_load.labels(elastic_worker).set(snap.cluster.value)
        self.cluster_timestamp.labels(elastic_worker).set(snap.cluster.at)
        self.alive.set(snap.cluster.workers or 0)

    def show_queue(self, queue: str, depth: int | None, consumers: int | None) -> None:
        if depth is None:
            _remove(self.queue_depth, queue)
            _remove(self.queue_consumers, queue)
            return
        self.queue_depth.labels(queue).set(depth)
        self.queue_consumers.labels(queue).set(consumers or 0)

    def unknown(self, elastic_worker: str) -> None:
        """The stream is down: drop the values rather than freeze them."""
        for pod in self._pods:
            for gauge in (self.worker_load, self.active, self.reserved, self.concurrency):
                _remove(gauge, pod)
        self._pods = set()
        _remove(self.cluster_load, elastic_worker)
        _remove(self.cluster_timestamp, elastic_worker)


def _remove(gauge: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)


class RedisPublisher:
    """Writes snapshots to Redis: every value timestamped, every key with a TTL."""

    def __init__(
        self,
        redis: Any,
        namespace: str,
        elastic_worker: str,
        ttl: float,
        write_members: bool = True,
    ) -> None:
        self.redis = redis
        self.namespace = namespace
        self.elastic_worker = elastic_worker
        self.ttl_ms = max(1, int(ttl * 1000))
        self.write_members = write_members
        self._pods: set[str] = set()

    def publish(self, snap: Snapshot, members: frozenset[str] | None) -> None:
        ns, ew, px = self.namespace, self.elastic_worker, self.ttl_ms
        pipe = self.redis.pipeline(transaction=False)
        for pod, load in snap.pods.items():
            for metric, value in (
                ("load", load.load),
                ("active_tasks", load.active),
                ("reserved_tasks", load.reserved),
            ):
                reading = Reading(float(value), snap.at)
                pipe.set(store.pod_key(ns, pod, metric), store.encode(reading), px=px)
        for pod in self._pods - set(snap.pods):  # gone: unknown at once, not after the TTL
            pipe.delete(*(store.pod_key(ns, pod, m) for m in store.POD_METRICS))
        cluster = snap.cluster
        pipe.set(store.cluster_key(ns, ew), store.encode(cluster), px=px)
        alive = Reading(float(cluster.workers or 0), cluster.at, cluster.workers)
        pipe.set(store.cluster_key(ns, ew, "alive_workers"), store.encode(alive), px=px)
        if self.write_members:
            listed = members if members is not None else frozenset(snap.pods)
            pipe.set(store.members_key(ns, ew), store.encode_members(listed, snap.at), px=px)
        pipe.execute()
        self._pods = set(snap.pods)

    def publish_queue(self, queue: str, depth: int, at: float) -> None:
        key = store.queue_key(self.namespace, queue)
        self.redis.set(key, store.encode(Reading(float(depth), at)), px=self.ttl_ms)


# --- the collector -------------------------------------------------------------------------------


@dataclass
class CollectorConfig:
    namespace: str
    elastic_worker: str
    interval: float = DEFAULT_INTERVAL
    queues: Sequence[str] = ("default",)
    settle: float = SETTLE
    # Ask each new worker its pool size (`inspect stats`); the events don't carry it.
    probe_concurrency: bool = True


class Collector:
    """Feeds the event stream into the model and publishes; `run()` until `stop()`."""

    def __init__(
        self,
        app: Any,
        model: LoadModel,
        membership: PodMembership,
        publisher: RedisPublisher,
        metrics: PrometheusMetrics,
        config: CollectorConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.model = model
        self.membership = membership
        self.publisher = publisher
        self.metrics = metrics
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._receiver: Any = None
        self._connected_at: float | None = None
        self._last_event_at = 0.0
        self._ever_connected = False
        self.last_publish_at: float | None = None
        self.last_tick_at: float | None = None
        self._queue_conn: Any = None
        self._probed: set[str] = set()
        self._probe_failures: dict[str, int] = {}
        self._probes = ThreadPoolExecutor(max_workers=2, thread_name_prefix="probe")

    # -- state -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected_at is not None

    def _publishing(self, now: float) -> bool:
        return (
            self._connected_at is not None
            and now - self._connected_at >= self.config.settle
            and self.membership.ready()
        )

    # -- event stream (receiver thread) ----------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        now = self.clock()
        kind = str(event.get("type", ""))
        self.metrics.events.labels(kind).inc()
        hostname = event.get("hostname")
        with self._lock:
            self._last_event_at = now
            changed = self.model.apply(event, now)
            if changed and self._publishing(now):
                self._publish(now)
                sent = event.get("timestamp")
                if isinstance(sent, int | float):
                    self.metrics.latency.observe(max(0.0, self.clock() - float(sent)))
            if kind in ("worker-online", "worker-offline") and isinstance(hostname, str):
                self._probed.discard(hostname)  # a restart may bring another pool size
            if (
                kind != "worker-offline"
                and self.config.probe_concurrency
                and isinstance(hostname, str)
                and hostname not in self._probed
                and hostname in self.model.hostnames
            ):
                self._probed.add(hostname)
                self._probes.submit(self._probe_concurrency, hostname)

    def _probe_concurrency(self, hostname: str) -> None:
        try:
            replies = self.app.control.inspect(destination=[hostname], timeout=2.0).stats() or {}
            concurrency = int(replies[hostname]["pool"]["max-concurrency"])
        except Exception as error:  # no reply, remote control off, another pool: keep the default
            with self._lock:
                tries = self._probe_failures[hostname] = self._probe_failures.get(hostname, 0) + 1
                if tries < PROBE_TRIES:
                    # A busy or just-started worker may answer later: ask again on its next event.
                    self._probed.discard(hostname)
            log.info("no pool size from %s (%s, try %d); using the default", hostname, error, tries)
            return
        now = self.clock()
        with self._lock:
            if self.model.set_concurrency(hostname, concurrency) and self._publishing(now):
                self._publish(now)

    def _receive_loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                with self.app.connection_for_read() as conn:
                    conn.ensure_connection(max_retries=1, timeout=5)
                    receiver = self.app.events.Receiver(conn, handlers={"*": self.on_event})
                    self._receiver = receiver
                    with self._lock:
                        if self._ever_connected:
                            self.model.forget_reserved()  # events in the gap are lost
                        self._ever_connected = True
                        self._connected_at = self.clock()
                    self.metrics.connected.set(1)
                    log.info("event stream connected to %s", conn.as_uri())
                    backoff = 0.5
                    receiver.capture(limit=None, timeout=None, wakeup=True)
            except Exception as error:
                if not self._stop.is_set():
                    log.warning("event stream: %s; reconnecting in %.1f s", error, backoff)
            finally:
                with self._lock:
                    self._connected_at = None
                self._receiver = None
                self.metrics.connected.set(0)
            if self._stop.wait(backoff):
                break
            backoff = min(backoff * 2, 10.0)

    def _restart_receiver(self) -> None:
        receiver = self._receiver
        if receiver is not None:
            receiver.should_stop = True

    # -- periodic work (main thread) -------------------------------------------------------------

    def tick(self) -> None:
        self.membership.refresh()
        now = self.clock()
        with self._lock:
            if self._stream_silent(now):
                log.warning("event stream silent while workers were known; reconnecting")
                self._restart_receiver()
                self._connected_at = None
            self.model.expire(now)
            if self._publishing(now):
                self._publish(now)
            elif not self.connected:
                self.metrics.unknown(self.config.elastic_worker)
        self._poll_queues(now)
        self.last_tick_at = now

    def _stream_silent(self, now: float) -> bool:
        """Every known worker timed out and nothing at all came: more likely a dead stream than
        a cluster that died at once. Reconnect (and wake the workers) before believing it."""
        if self._connected_at is None or not self.model.hostnames:
            return False
        limit = self.model.heartbeat_window * DEFAULT_FREQ + self.config.interval
        return (
            all(not self.model.alive(h, now) for h in self.model.hostnames)
            and now - self._last_event_at > limit
            and now - self._connected_at > limit
        )

    def _publish(self, now: float) -> None:
        snap = self.model.snapshot(now, self.membership.contains)
        try:
            self.publisher.publish(snap, self.membership.known())
            self.last_publish_at = now
        except Exception as error:
            self.metrics.redis_errors.inc()
            log.warning("cannot write to redis: %s", error)
        self.metrics.show(self.config.elastic_worker, snap)

    def _poll_queues(self, now: float) -> None:
        if not self.config.queues:
            return
        try:
            if self._queue_conn is None:
                self._queue_conn = self.app.connection_for_read()
                self._queue_conn.ensure_connection(max_retries=1, timeout=5)
            channel = self._queue_conn.default_channel
            for queue in self.config.queues:
                ok = channel.queue_declare(queue=queue, passive=True)
                depth, consumers = int(ok.message_count), int(ok.consumer_count)
                self.metrics.show_queue(queue, depth, consumers)
                try:
                    self.publisher.publish_queue(queue, depth, now)
                except Exception as error:
                    self.metrics.redis_errors.inc()
                    log.warning("cannot write queue depth to redis: %s", error)
        except Exception as error:  # a missing queue closes the channel: start afresh next time
            log.info("queue depth unavailable: %s", error)
            for queue in self.config.queues:
                self.metrics.show_queue(queue, None, None)
            self._close_queue_conn()

    def _close_queue_conn(self) -> None:
        conn, self._queue_conn = self._queue_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.release()

    # -- life ------------------------------------------------------------------------------------

    def run(self) -> None:
        receiver = threading.Thread(target=self._receive_loop, name="events", daemon=True)
        receiver.start()
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    self.tick()
                except Exception:
                    log.exception("collector tick failed")
                self._stop.wait(max(0.0, self.config.interval - (time.monotonic() - started)))
        finally:
            self._stop.set()
            self._restart_receiver()
            receiver.join(timeout=5)
            self._probes.shutdown(wait=False, cancel_futures=True)
            self._close_queue_conn()

    def stop(self) -> None:
        self._stop.set()
        self._restart_receiver()

    def health(self) -> tuple[bool, bool, str]:
        """(live, ready, detail)."""
        now = self.clock()
        tick_ok = self.last_tick_at is not None and now - self.last_tick_at < 3 * max(
            self.config.interval, 1.0
        )
        live = tick_ok or self.last_tick_at is None
        fresh = self.last_publish_at is not None and now - self.last_publish_at < 2 * max(
            self.config.interval, 1.0
        )
        ready = self.connected and fresh
        detail = (
            f"connected={self.connected} last_publish_age="
            f"{'-' if self.last_publish_at is None else round(now - self.last_publish_at, 3)}"
        )
        return live, ready, detail


# --- HTTP: /metrics, /healthz, /readyz -----------------------------------------------------------


def serve_http(
    host: str, port: int, registry: CollectorRegistry, health: Callable[[], tuple[bool, bool, str]]
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, status, ctype = generate_latest(registry), 200, CONTENT_TYPE_LATEST
            elif path in ("/healthz", "/readyz"):
                live, ready, detail = health()
                ok = live if path == "/healthz" else ready
                body = f"{'ok' if ok else 'not ok'} {detail}\n".encode()
                status, ctype = (200 if ok else 503), "text/plain; charset=utf-8"
            else:
                body, status, ctype = b"not found\n", 404, "text/plain; charset=utf-8"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server


# --- command line --------------------------------------------------------------------------------


def _membership(args: argparse.Namespace, redis: Any) -> tuple[PodMembership, bool]:
    """The membership source, and whether the collector should write the member list."""
    if args.pods_from_redis:
        return RedisMembership(redis, args.namespace, args.elasticworker), False
    if args.pod_prefix is not None:
        return PrefixMembership(args.pod_prefix), True
    if args.pods is not None:
        return StaticMembership(p for p in args.pods.split(",") if p), True
    if args.all_pods:
        return AllPods(), True
    from kubernetes import client, config

    if args.kubeconfig:
        api = config.new_client_from_config(config_file=args.kubeconfig)
    elif args.in_cluster or os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
        api = client.ApiClient()
    else:
        raise SystemExit(
            "collector: no pod membership source: give --kubeconfig, --in-cluster, "
            "--pods-from-redis, --pod-prefix, --pods or --all-pods"
        )
    return KubeLabelMembership(client.CoreV1Api(api), args.namespace, args.elasticworker), True


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m controllers.metrics.collector", description=__doc__)
    p.add_argument("--broker-url", default=env("ELASTIC_AIRFLOW_BROKER_URL"))
    p.add_argument("--redis-url", default=env("ELASTIC_AIRFLOW_REDIS_URL"))
    p.add_argument("--namespace", default=env("POD_NAMESPACE", "default"))
    p.add_argument("--elasticworker", required=True, help="the ElasticWorker whose pods count")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--kubeconfig", help="members from the Kubernetes API (by label)")
    source.add_argument("--in-cluster", action="store_true", help="same, in-cluster config")
    source.add_argument(
        "--pods-from-redis", action="store_true", help="members from store.members_key"
    )
    source.add_argument("--pod-prefix", help="members are pods whose name starts with this")
    source.add_argument("--pods", help="members: comma-separated pod names")
    source.add_argument("--all-pods", action="store_true", help="every worker is a member")
    p.add_argument("--interval", type=float, default=DEFAULT_INTERVAL)
    p.add_argument("--ttl", type=float, default=None, help="key TTL in s (default 5 x interval)")
    p.add_argument(
        "--concurrency", type=int, default=2, help="slots per worker when it doesn't say (2)"
    )
    p.add_argument(
        "--no-probe-concurrency",
        dest="probe_concurrency",
        action="store_false",
        help="don't ask new workers their pool size (inspect stats)",
    )
    p.add_argument("--heartbeat-window", type=float, default=2.0, help="x heartbeat interval")
    p.add_argument("--queue", action="append", dest="queues", help="queue(s) to measure")
    p.add_argument("--metrics-host", default="0.0.0.0")
    p.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT, help="0: off")
    p.add_argument("--log-level", default=env("LOG_LEVEL", "INFO"))
    args = p.parse_args(list(argv) if argv is not None else None)
    if not args.broker_url:
        p.error("--broker-url (or ELASTIC_AIRFLOW_BROKER_URL) is required")
    if not args.redis_url:
        p.error("--redis-url (or ELASTIC_AIRFLOW_REDIS_URL) is required")
    if args.interval <= 0 or args.concurrency < 1:
        p.error("--interval must be > 0 and --concurrency >= 1")
    if args.ttl is None:
        args.ttl = 5 * args.interval
    if args.queues is None:
        args.queues = ["default"]
    return args


def main(argv: Iterable[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import redis as redis_lib
    from celery import Celery

    app = Celery("elastic-airflow-collector", broker=args.broker_url)
    app.conf.broker_connection_retry_on_startup = True
    client = redis_lib.Redis.from_url(
        args.redis_url, socket_timeout=3, socket_connect_timeout=3, health_check_interval=30
    )
    membership, write_members = _membership(args, client)
    metrics = PrometheusMetrics()
    collector = Collector(
        app,
        LoadModel(args.concurrency, args.heartbeat_window),
        membership,
        RedisPublisher(client, args.namespace, args.elasticworker, args.ttl, write_members),
        metrics,
        CollectorConfig(
            args.namespace,
            args.elasticworker,
            args.interval,
            tuple(args.queues),
            probe_concurrency=args.probe_concurrency,
        ),
    )
    server = None
    if args.metrics_port:
        server = serve_http(
            args.metrics_host, args.metrics_port, metrics.registry, collector.health
        )
        log.info("metrics on http://%s:%d/metrics", args.metrics_host, server.server_port)

    def _terminate(signum: int, frame: Any) -> None:
        collector.stop()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    try:
        collector.run()
    finally:
        if server is not None:
            server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
