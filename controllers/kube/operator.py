"""The operator process: kopf watches, a work queue, the two controllers, leader election.

kopf does the watching (list + watch with reconnects, resource discovery, login) and only turns
events into keys on a work queue: `@kopf.on.event` handlers add no finalizer and write nothing to
the objects. kopf's own timers and daemons are not used because kopf puts a finalizer on every
object that has one (an ElasticWorker could then not be deleted while the operator is down), and
its per-object handlers would not serialise an ElasticWorker with the events of its pods. The
queue does: one key per object, never processed twice at once, re-added after each run (the
ElasticWorker's resync, the autoscaler's sync period), pulled forward by events.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kopf
from kubernetes import client as k8s

from controllers.api import AUTOSCALER_PLURAL, ELASTIC_WORKER_PLURAL, GROUP, VERSION
from controllers.kube.autoscaler import AutoscalerController, HookFactory
from controllers.kube.client import Kube
from controllers.kube.hook import make_hook
from controllers.kube.leader import LeaderElector
from controllers.kube.views import OWNER_LABEL
from controllers.kube.workers import reconcile_elastic_worker
from controllers.kube.workqueue import Key, WorkQueue, run_workers
from controllers.metrics.source import MetricsSource, NoMetrics

log = logging.getLogger("controllers.operator")

EW = "elasticworker"
EWA = "autoscaler"
SYNC_PERIOD = 5.0  # the autoscaler's, as the prototype's requeue
RESYNC_PERIOD = 10.0  # the ElasticWorker's, on top of its events
WORKERS = 4


@dataclass
class Controllers:
    """The two controllers behind one work queue; kopf handlers only feed the queue."""

    kube: Kube
    metrics: MetricsSource = field(default_factory=NoMetrics)
    hook_factory: HookFactory = make_hook
    sync_period: float = SYNC_PERIOD
    resync_period: float = RESYNC_PERIOD
    workers: int = WORKERS

    def __post_init__(self) -> None:
        self.queue = WorkQueue()
        self.autoscaler = AutoscalerController(self.kube, self.metrics, self.hook_factory)
        self._generations: dict[Key, Any] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if not self._threads:
            self._threads = run_workers(self.queue, self.handle, self.workers, "reconcile")

    def stop(self) -> None:
        self.queue.close()

    def handle(self, key: Key) -> float | None:
        kind, namespace, name = key  # type: ignore[misc]
        if kind == EW:
            found = reconcile_elastic_worker(self.kube, namespace, name).found
            period = self.resync_period
        else:
            found = self.autoscaler.sync(namespace, name).found
            period = self.sync_period
        if not found:
            self._generations.pop(key, None)
            return None
        return period

    # -- from watch events ---------------------------------------------------------------------

    def object_event(self, kind: str, event_type: str | None, body: Any) -> None:
        """An ElasticWorker or autoscaler changed. Only a new generation (a spec change), a
        first sighting or a deletion counts: status writes, ours included, do not re-trigger."""
        meta = body.get("metadata") or {}
        key = (kind, meta.get("namespace"), meta.get("name"))
        if event_type == "DELETED":
            self._generations.pop(key, None)
            self.queue.forget(key)
            return
        generation = meta.get("generation")
        if self._generations.get(key) == generation:
            return
        self._generations[key] = generation
        self.queue.add(key)

    def pod_event(self, body: Any) -> None:
        meta = body.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(OWNER_LABEL)
        if owner:
            self.queue.add((EW, meta.get("namespace"), owner))


def build_registry(controllers: Controllers, api: k8s.ApiClient) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def _configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.peering.standalone = True
        settings.posting.enabled = False  # the controllers post their own events
        settings.watching.server_timeout = 60
        settings.watching.client_timeout = 90
        settings.networking.request_timeout = 30
        controllers.start()

    @kopf.on.cleanup(registry=registry)
    def _cleanup(**_: Any) -> None:
        controllers.stop()

    @kopf.on.login(registry=registry)
    def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return connection_info(api)

    @kopf.on.event(GROUP, VERSION, ELASTIC_WORKER_PLURAL, registry=registry)
    async def _elastic_worker(type: str | None, body: Any, **_: Any) -> None:
        controllers.object_event(EW, type, body)

    @kopf.on.event(GROUP, VERSION, AUTOSCALER_PLURAL, registry=registry)
    async def _autoscaler(type: str | None, body: Any, **_: Any) -> None:
        controllers.object_event(EWA, type, body)

    @kopf.on.event("", "v1", "pods", labels={OWNER_LABEL: kopf.PRESENT}, registry=registry)
    async def _pod(body: Any, **_: Any) -> None:
        controllers.pod_event(body)

    return registry


def connection_info(api: k8s.ApiClient) -> kopf.ConnectionInfo:
    """kopf's credentials from the same client configuration the controllers use."""
    config = api.configuration
    token = None
    auth = (config.api_key or {}).get("authorization") or (config.api_key or {}).get("BearerToken")
    if config.refresh_api_key_hook is not None:
        config.refresh_api_key_hook(config)
        auth = (config.api_key or {}).get("authorization") or auth
    if auth:
        token = auth.split(" ", 1)[1] if auth.lower().startswith("bearer ") else auth
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert or None,
        insecure=not config.verify_ssl,
        certificate_path=config.cert_file or None,
        private_key_path=config.key_file or None,
        token=token,
        scheme="Bearer" if token else None,
        username=config.username or None,
        password=config.password or None,
    )


@dataclass
class OperatorConfig:
    namespace: str | None = None
    sync_period: float = SYNC_PERIOD
    resync_period: float = RESYNC_PERIOD
    leader_election: bool = False
    lease_namespace: str = "default"
    lease_name: str = "elastic-airflow-operator"
    identity: str | None = None
    workers: int = WORKERS
    liveness: str | None = None


def run(
    api: k8s.ApiClient,
    config: OperatorConfig,
    metrics: MetricsSource,
    hook_factory: HookFactory = make_hook,
    exit_on_lost: Callable[[int], None] = os._exit,
) -> int:
    """Run until SIGTERM/SIGINT (0) or until the lease is lost (non-zero exit)."""
    stop = threading.Event()
    elector: LeaderElector | None = None
    if config.leader_election:
        kwargs = {"identity": config.identity} if config.identity else {}
        elector = LeaderElector(api, config.lease_namespace, config.lease_name, **kwargs)
        previous = {
            sig: signal.signal(sig, lambda *_: stop.set())
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            if not elector.acquire(stop):
                log.info("stopped while on standby")
                return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    controllers = Controllers(
        Kube(api),
        metrics,
        hook_factory,
        sync_period=config.sync_period,
        resync_period=config.resync_period,
        workers=config.workers,
    )
    kopf_stop = threading.Event()
    renewer: threading.Thread | None = None
    if elector is not None:

        def keep_lease() -> None:
            if elector.renew_until_lost(kopf_stop):
                return
            # Another replica may act from now on: stop acting at once, exit non-zero.
            controllers.stop()
            log.critical("lost the leader lease: exiting so that a restart starts as standby")
            logging.shutdown()
            exit_on_lost(1)

        renewer = threading.Thread(target=keep_lease, name="leader-renew", daemon=True)
        renewer.start()

    registry = build_registry(controllers, api)
    log.info(
        "operator starting: %s, sync %.0f s, resync %.0f s",
        f"namespace {config.namespace}" if config.namespace else "all namespaces",
        config.sync_period,
        config.resync_period,
    )

    async def operate() -> None:
        # An asyncio flag, not a threading.Event: kopf waits for the latter in an executor
        # thread, which then blocks the interpreter's exit after a SIGTERM.
        flag = asyncio.Event()
        loop = asyncio.get_running_loop()
        stopper = threading.Thread(
            target=lambda: kopf_stop.wait() or loop.call_soon_threadsafe(flag.set),
            name="kopf-stopper",
            daemon=True,
        )
        stopper.start()
        await kopf.operator(
            registry=registry,
            standalone=True,
            clusterwide=config.namespace is None,
            namespaces=[config.namespace] if config.namespace else (),
            stop_flag=flag,
            liveness_endpoint=config.liveness,
        )

    try:
        asyncio.run(operate())
    except asyncio.CancelledError:
        pass
    finally:
        kopf_stop.set()
        controllers.stop()
        if renewer is not None:
            renewer.join(10)
        if elector is not None:
            elector.release()
    log.info("operator stopped")
    return 0


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # kopf logs every watch event at DEBUG and reconnections at INFO; keep its warnings.
    logging.getLogger("kopf").setLevel(max(logging.WARNING, logging.getLogger().level))
