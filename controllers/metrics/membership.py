"""Which pods belong to an ElasticWorker: the collector counts only those workers.

`PodMembership` is the interface: `refresh()` (may do I/O; the collector calls it once per
interval, outside its lock), `contains(pod)` (cheap, no I/O), and `known()` (the member names when
the source can list them, else None). Sources: the Kubernetes API by the ElasticWorker label, a
member list that someone else keeps in Redis (`--pods-from-redis`, for cluster-less setups), a
name prefix, an explicit set, or everything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

from controllers.metrics import store

log = logging.getLogger(__name__)

ELASTICWORKER_LABEL = "elasticcluster.sarweshsuman.com/elasticworker"


class PodMembership(Protocol):
    def refresh(self) -> bool:
        """Re-read the members; False when the source could not be read (old answer kept)."""
        ...

    def ready(self) -> bool:
        """True once the members are known (a cluster reading over unknown members is unsafe)."""
        ...

    def contains(self, pod: str) -> bool: ...

    def known(self) -> frozenset[str] | None: ...


class AllPods:
    """Every worker counts (one ElasticWorker per broker)."""

    def refresh(self) -> bool:
        return True

    def ready(self) -> bool:
        return True

    def contains(self, pod: str) -> bool:
        return True

    def known(self) -> frozenset[str] | None:
        return None


class PrefixMembership:
    """Pods whose name starts with a prefix (ElasticWorker pods are `<ew>-replica-...`)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def refresh(self) -> bool:
        return True

    def ready(self) -> bool:
        return True

    def contains(self, pod: str) -> bool:
        return pod.startswith(self.prefix)

    def known(self) -> frozenset[str] | None:
        return None


class StaticMembership:
    """An explicit set of pod names (it may be replaced with `set()`)."""

    def __init__(self, pods: Iterable[str]) -> None:
        self._pods = frozenset(pods)

    def set(self, pods: Iterable[str]) -> None:
        self._pods = frozenset(pods)

    def refresh(self) -> bool:
        return True

    def ready(self) -> bool:
        return True

    def contains(self, pod: str) -> bool:
        return pod in self._pods

    def known(self) -> frozenset[str] | None:
        return self._pods


class _Listed:
    """A membership refreshed from a source that can list names; keeps the last good answer."""

    def __init__(self) -> None:
        self._pods: frozenset[str] | None = None

    def _list(self) -> frozenset[str] | None:
        raise NotImplementedError

    def refresh(self) -> bool:
        try:
            pods = self._list()
        except Exception as error:  # API or Redis down: keep the last answer
            log.warning("membership: cannot list pods: %s", error)
            return False
        if pods is None:
            return False
        self._pods = pods
        return True

    def ready(self) -> bool:
        return self._pods is not None

    def contains(self, pod: str) -> bool:
        return self._pods is not None and pod in self._pods

    def known(self) -> frozenset[str] | None:
        return self._pods


class KubeLabelMembership(_Listed):
    """Pods in `namespace` labelled `elasticcluster.sarweshsuman.com/elasticworker=<name>`.

    Terminating pods are members: their workers still hold capacity until they exit.
    """

    def __init__(
        self, core_v1: Any, namespace: str, elastic_worker: str, label: str = ELASTICWORKER_LABEL
    ) -> None:
        super().__init__()
        self.core_v1 = core_v1
        self.namespace = namespace
        self.selector = f"{label}={elastic_worker}"

    def _list(self) -> frozenset[str]:
        pods = self.core_v1.list_namespaced_pod(
            self.namespace, label_selector=self.selector, _request_timeout=5
        )
        return frozenset(p.metadata.name for p in pods.items or ())


class RedisMembership(_Listed):
    """The member list at `store.members_key(namespace, elastic_worker)`, kept by someone else."""

    def __init__(self, redis: Any, namespace: str, elastic_worker: str) -> None:
        super().__init__()
        self.redis = redis
        self.key = store.members_key(namespace, elastic_worker)

    def _list(self) -> frozenset[str] | None:
        pods = store.decode_members(self.redis.get(self.key))
        if pods is None:
            log.warning("membership: no member list at %s", self.key)
        return pods
