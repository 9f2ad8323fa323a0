"""Where the autoscaler reads load from.

`MetricsSource` is the interface; `RedisMetrics` reads the collector's timestamped keys
(`controllers.metrics.store`). A custom-metrics-API source can be added behind the same interface.
A missing, expired or unreadable value is `None` (unknown), never 0.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from controllers.core.types import Reading
from controllers.metrics.store import MetricStore, cluster_key, pod_key

log = logging.getLogger(__name__)

REDIS_TIMEOUT = 3.0


class MetricsSource(Protocol):
    def cluster_load(self, namespace: str, elastic_worker: str, metric: str) -> Reading | None: ...

    def pod_loads(
        self, namespace: str, pods: Iterable[str], metric: str
    ) -> dict[str, Reading | None]: ...


class NoMetrics:
    """No source configured: every reading is unknown, so the autoscaler holds."""

    def cluster_load(self, namespace: str, elastic_worker: str, metric: str) -> Reading | None:
        return None

    def pod_loads(
        self, namespace: str, pods: Iterable[str], metric: str
    ) -> dict[str, Reading | None]:
        return dict.fromkeys(pods)


class RedisMetrics:
    """The collector's readings in Redis; a Redis error reads as unknown."""

    def __init__(self, url: str, timeout: float = REDIS_TIMEOUT) -> None:
        import redis  # only the operators that read Redis need the client

        self.url = url
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._store = MetricStore(self._redis)

    def _get(self, key: str) -> Reading | None:
        try:
            return self._store.get(key)
        except Exception as error:  # connection refused, timeout, auth: all mean "unknown"
            log.warning("metrics: cannot read %s from redis: %s", key, error)
            return None

    def cluster_load(self, namespace: str, elastic_worker: str, metric: str) -> Reading | None:
        return self._get(cluster_key(namespace, elastic_worker, metric))

    def pod_loads(
        self, namespace: str, pods: Iterable[str], metric: str
    ) -> dict[str, Reading | None]:
        return {pod: self._get(pod_key(namespace, pod, metric)) for pod in pods}
