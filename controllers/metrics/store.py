"""Where metrics live in Redis, and how a reading is written and read back.

Every value carries the time it was sampled, and every key expires: a collector that stops
leaves no frozen value behind (the prototype's flaw 2), and a reader tells missing from 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from controllers.core.types import Reading

PREFIX = "elastic-airflow"
DEFAULT_TTL = 60  # seconds; readers also apply the autoscaler's own maxAgeSeconds


class RedisLike(Protocol):
    def get(self, name: str) -> Any: ...
    def set(self, name: str, value: Any, ex: int | None = None) -> Any: ...


def cluster_key(namespace: str, elastic_worker: str, metric: str = "total_cluster_load") -> str:
    return f"{PREFIX}/{namespace}/elasticworkers/{elastic_worker}/{metric}"


def pod_key(namespace: str, pod: str, metric: str = "load") -> str:
    return f"{PREFIX}/{namespace}/pods/{pod}/{metric}"


def encode(reading: Reading) -> str:
    return json.dumps({"value": reading.value, "at": reading.at, "workers": reading.workers})


def decode(raw: bytes | str | None) -> Reading | None:
    """A reading, or None for a missing key or a value that is not a reading (never 0)."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return Reading(float(data["value"]), float(data["at"]), data.get("workers"))
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class MetricStore:
    redis: RedisLike
    ttl: int = DEFAULT_TTL

    def put(self, key: str, reading: Reading) -> None:
        self.redis.set(key, encode(reading), ex=self.ttl)

    def get(self, key: str) -> Reading | None:
        return decode(self.redis.get(key))

    def delete(self, key: str) -> None:
        self.redis.delete(key)  # type: ignore[attr-defined]


# --- additions for the collector, the adapter and the operator ------------------------------------
#
# Layout (every key expires; every value says when it was sampled):
#   elastic-airflow/<ns>/pods/<pod>/<metric>           Reading JSON (load, active/reserved_tasks)
#   elastic-airflow/<ns>/elasticworkers/<ew>/<metric>  Reading JSON (total_cluster_load,
#                                                      alive_workers)
#   elastic-airflow/<ns>/elasticworkers/<ew>/pods      {"pods": [...], "at": t}: the pods the
#       collector counted for that ElasticWorker (written by the collector, or by whoever runs a
#       cluster-less setup with `--pods-from-redis`)
#   elastic-airflow/<ns>/queues/<queue>/depth          Reading JSON (messages ready)

POD_METRICS = ("load", "active_tasks", "reserved_tasks")
CLUSTER_METRICS = ("total_cluster_load", "alive_workers")


def members_key(namespace: str, elastic_worker: str) -> str:
    return f"{PREFIX}/{namespace}/elasticworkers/{elastic_worker}/pods"


def queue_key(namespace: str, queue: str, metric: str = "depth") -> str:
    return f"{PREFIX}/{namespace}/queues/{queue}/{metric}"


def pod_key_pattern(namespace: str, metric: str = "load") -> str:
    """A SCAN pattern matching `pod_key(namespace, *, metric)` (glob characters escaped)."""
    return f"{glob_escape(f'{PREFIX}/{namespace}/pods/')}*{glob_escape(f'/{metric}')}"


def pod_from_key(key: bytes | str, namespace: str, metric: str = "load") -> str | None:
    text = key.decode() if isinstance(key, bytes) else key
    head, tail = f"{PREFIX}/{namespace}/pods/", f"/{metric}"
    if not (text.startswith(head) and text.endswith(tail)):
        return None
    pod = text[len(head) : len(text) - len(tail)]
    return pod if pod and "/" not in pod else None


def encode_members(pods: Iterable[str], at: float) -> str:
    return json.dumps({"pods": sorted(set(pods)), "at": at})


def decode_members(raw: bytes | str | None) -> frozenset[str] | None:
    """The member pods, or None when missing or unreadable (unknown, not empty)."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return frozenset(str(p) for p in data["pods"])
    except (ValueError, KeyError, TypeError):
        return None


def glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
