"""Where the operator reads load: `MetricsSource`, from Redis or through the custom metrics API.

Both return a `Reading` (value and the time it was *sampled*) or None when the value is missing,
expired or unreadable: unknown, never 0. Callers still apply their own max age
(`Reading.fresh(now, max_age)`).

- `RedisMetrics(redis_url)`: the collector's keys directly (`controllers.metrics.store`). Works
  wherever Redis is reachable; keeps `workers` (live workers behind a cluster load).
- `CustomMetricsApi(api_client)`: `custom.metrics.k8s.io/v1beta2` through the Kubernetes
  aggregation layer (the adapter behind an APIService), with the caller's own credentials.
  `workers` comes from the `alive_workers` metric.

- `NoMetrics`: nothing configured; every reading is unknown, so the autoscaler holds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import quote

from controllers.core.types import Reading
from controllers.metrics import store, wire

log = logging.getLogger(__name__)

TIMEOUT = 3.0


class MetricsSource(Protocol):
    def cluster_load(
        self, namespace: str, elastic_worker: str, metric: str = "total_cluster_load"
    ) -> Reading | None: ...

    def pod_load(self, namespace: str, pod: str, metric: str = "load") -> Reading | None: ...

    def pod_loads(
        self, namespace: str, pods: Iterable[str], metric: str = "load"
    ) -> dict[str, Reading | None]: ...


class NoMetrics:
    """No source configured: every reading is unknown, so the autoscaler holds."""

    def cluster_load(
        self, namespace: str, elastic_worker: str, metric: str = "total_cluster_load"
    ) -> Reading | None:
        return None

    def pod_load(self, namespace: str, pod: str, metric: str = "load") -> Reading | None:
        return None

    def pod_loads(
        self, namespace: str, pods: Iterable[str], metric: str = "load"
    ) -> dict[str, Reading | None]:
        return dict.fromkeys(pods)


class RedisMetrics:
    """The collector's readings in Redis; a Redis error reads as unknown."""

    def __init__(
        self, redis_url: str | None = None, *, client: Any = None, timeout: float = TIMEOUT
    ):
        if client is None:
            if redis_url is None:
                raise ValueError("RedisMetrics needs redis_url or client")
            import redis

            client = redis.Redis.from_url(
                redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        self.redis = client
        self._store = store.MetricStore(client)

    def _get(self, key: str) -> Reading | None:
        try:
            return self._store.get(key)
        except Exception as error:  # refused, timeout, auth: all mean "unknown"
            log.warning("metrics: cannot read %s from redis: %s", key, error)
            return None

    def cluster_load(
        self, namespace: str, elastic_worker: str, metric: str = "total_cluster_load"
    ) -> Reading | None:
        return self._get(store.cluster_key(namespace, elastic_worker, metric))

    def pod_load(self, namespace: str, pod: str, metric: str = "load") -> Reading | None:
        return self._get(store.pod_key(namespace, pod, metric))

    def pod_loads(
        self, namespace: str, pods: Iterable[str], metric: str = "load"
    ) -> dict[str, Reading | None]:
        names = list(pods)
        if not names:
            return {}
        try:
            raws = self.redis.mget([store.pod_key(namespace, p, metric) for p in names])
        except Exception as error:
            log.warning("metrics: cannot read pod %s from redis: %s", metric, error)
            return dict.fromkeys(names)
        return {name: store.decode(raw) for name, raw in zip(names, raws, strict=True)}

    def queue_depth(self, namespace: str, queue: str) -> Reading | None:
        return self._get(store.queue_key(namespace, queue))

    def close(self) -> None:
        self.redis.close()


class CustomMetricsApi:
    """`custom.metrics.k8s.io/v1beta2` through the aggregation layer; 404 (or any error) -> None.

    `api_client` is a `kubernetes.client.ApiClient` (any version >= 29).
    """

    def __init__(self, api_client: Any, timeout: float = TIMEOUT) -> None:
        self.api_client = api_client
        self.timeout = timeout

    def _get(self, path: str, query: dict[str, str] | None = None) -> dict[str, Any] | None:
        try:
            status, body = _get_json(self.api_client, wire.BASE_PATH + path, query, self.timeout)
        except Exception as error:
            log.warning("metrics: GET %s failed: %s", path, error)
            return None
        if status == 404:
            return None
        if status != 200 or not isinstance(body, dict):
            log.warning("metrics: GET %s answered %s", path, status)
            return None
        return body

    def _one(self, path: str) -> Reading | None:
        body = self._get(path)
        if body is None:
            return None
        try:
            return wire.reading_of(body["items"][0])
        except (KeyError, IndexError, TypeError, ValueError) as error:
            log.warning("metrics: unreadable answer for %s: %s", path, error)
            return None

    def cluster_load(
        self, namespace: str, elastic_worker: str, metric: str = "total_cluster_load"
    ) -> Reading | None:
        base = f"/namespaces/{quote(namespace)}/{wire.EW_RESOURCE}/{quote(elastic_worker)}"
        reading = self._one(f"{base}/{quote(metric)}")
        if reading is None or metric != "total_cluster_load":
            return reading
        alive = self._one(f"{base}/alive_workers")
        workers = int(alive.value) if alive is not None and alive.at == reading.at else None
        return Reading(reading.value, reading.at, workers)

    def pod_load(self, namespace: str, pod: str, metric: str = "load") -> Reading | None:
        return self._one(f"/namespaces/{quote(namespace)}/pods/{quote(pod)}/{quote(metric)}")

    def pod_loads(
        self, namespace: str, pods: Iterable[str], metric: str = "load"
    ) -> dict[str, Reading | None]:
        return {pod: self.pod_load(namespace, pod, metric) for pod in pods}

    def pods_by_selector(
        self, namespace: str, label_selector: str, metric: str = "load"
    ) -> dict[str, Reading]:
        """Every pod matching the selector that has a fresh value (one request)."""
        path = f"/namespaces/{quote(namespace)}/pods/*/{quote(metric)}"
        body = self._get(path, {"labelSelector": label_selector} if label_selector else None)
        out: dict[str, Reading] = {}
        for item in (body or {}).get("items") or ():
            try:
                out[item["describedObject"]["name"]] = wire.reading_of(item)
            except (KeyError, TypeError, ValueError):
                continue
        return out


def _get_json(
    api_client: Any, path: str, query: dict[str, str] | None, timeout: float
) -> tuple[int, Any]:
    """GET `path` with the client's credentials; (status, parsed JSON or None)."""
    headers = {"Accept": "application/json"}
    query_list = list((query or {}).items())
    if hasattr(api_client, "param_serialize"):  # kubernetes >= 35 (openapi-generator 7)
        params = api_client.param_serialize(
            method="GET",
            resource_path=path,
            query_params=query_list,
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        try:
            response = api_client.call_api(*params, _request_timeout=timeout)
        except Exception as error:
            status = getattr(error, "status", None)
            if status:
                return int(status), None
            raise
        data = response.read() if response.data is None else response.data
        status = int(response.status)
    else:  # kubernetes 29..34
        from kubernetes.client.rest import ApiException

        try:
            response = api_client.call_api(
                path,
                "GET",
                query_params=query_list,
                header_params=headers,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=timeout,
            )
        except ApiException as error:
            return int(error.status or 0), None
        data, status = response.data, int(response.status)
    try:
        return status, json.loads(data) if data else None
    except ValueError:
        return status, None
