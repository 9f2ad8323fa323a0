"""Where metrics live in Redis, and how a reading is written and read back.

Every value carries the time it was sampled, and every key expires: a collector that stops
leaves no frozen value behind (the prototype's flaw 2), and a reader tells missing from 0.
"""

from __future__ import annotations

import json
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
