"""What the Celery event stream says about each worker's load: a small, pure model.

`LoadModel.apply(event, now)` takes one Celery event (the dict `app.events.Receiver` hands its
handlers) and the collector's clock, and says whether a published number changed;
`LoadModel.snapshot(now, members)` returns the readings. No broker, no clock, no Redis.

Per worker it keeps the tasks *reserved* (received, not started) and *active* (started, not
finished), and when it last heard from the worker. A worker is gone after `worker-offline`, or when
nothing came from it for `heartbeat_window` x its heartbeat interval (Celery's own rule, 2 x
`freq`). A worker's pod is the part of its hostname after `celery@`.

What the events carry (Celery 5.5/5.6, `celery.worker.heartbeat`): `worker-online`,
`worker-heartbeat` and `worker-offline` have `freq` (the heartbeat interval), `active` (the
worker's count of accepted requests), `processed`, `loadavg` and the software info; no pool size,
so the concurrency comes from the collector's configuration unless an event says `concurrency`.
Task events carry `uuid` and the worker's `hostname`; task events are batched by the worker and
flushed on its next loop tick, heartbeats are sent at once, so the two can cross. The heartbeat's
`active` count therefore corrects the model only when two heartbeats in a row disagree with it
the same way (e.g. tasks that started before the collector did).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from controllers.core.types import Reading

DEFAULT_CONCURRENCY = 2
DEFAULT_FREQ = 2.0  # Celery's default heartbeat interval (seconds)
HEARTBEAT_WINDOW = 2.0  # gone after this many heartbeat intervals of silence

# A task leaves its worker with any of these (a retry is a new delivery).
TASK_DONE = frozenset(
    {
        "task-succeeded",
        "task-failed",
        "task-revoked",
        "task-retried",
        "task-rejected",
        "task-cancelled",
    }
)
# Done events after which the task had been running (they free an active slot).
_RAN = frozenset({"task-succeeded", "task-failed", "task-retried", "task-cancelled"})


def pod_of(hostname: str) -> str:
    """`celery@airflow-worker-0` -> `airflow-worker-0` (a name without `@` is its own pod)."""
    return hostname.split("@", 1)[1] if "@" in hostname else hostname


def ceil_percent(part: int, whole: int) -> int:
    """ceil(100 * part / whole) in integers; 0 when there is no capacity."""
    return -(-100 * part // whole) if whole > 0 else 0


@dataclass
class _Worker:
    hostname: str
    concurrency: int
    freq: float
    last_seen: float
    active: dict[str, float] = field(default_factory=dict)  # uuid -> started (collector clock)
    reserved: dict[str, float] = field(default_factory=dict)  # uuid -> received
    unknown_active: int = 0  # running tasks the heartbeat reports but no event named
    disagreement: int | None = None  # heartbeat `active` that disagreed once already

    @property
    def active_count(self) -> int:
        return len(self.active) + self.unknown_active

    def counts(self) -> tuple[int, int, int]:
        return (self.active_count, len(self.reserved), self.concurrency)


@dataclass(frozen=True)
class PodLoad:
    """One live worker's numbers."""

    pod: str
    hostname: str
    active: int
    reserved: int
    concurrency: int
    last_seen: float

    @property
    def load(self) -> int:
        """The prototype's per-pod metric: ceil(100 * active / concurrency)."""
        return ceil_percent(self.active, self.concurrency)


@dataclass(frozen=True)
class Snapshot:
    """The readings at `at`: the live member workers and the cluster's load over them."""

    at: float
    pods: Mapping[str, PodLoad]
    cluster: Reading  # total_cluster_load; workers = live member workers

    @property
    def active(self) -> int:
        return sum(p.active for p in self.pods.values())

    @property
    def reserved(self) -> int:
        return sum(p.reserved for p in self.pods.values())

    @property
    def capacity(self) -> int:
        return sum(p.concurrency for p in self.pods.values())


class LoadModel:
    """Per-worker active/reserved tasks and liveness, from Celery events."""

    def __init__(
        self,
        default_concurrency: int = DEFAULT_CONCURRENCY,
        heartbeat_window: float = HEARTBEAT_WINDOW,
        concurrency_of: Callable[[str], int | None] | None = None,
    ) -> None:
        if default_concurrency < 1:
            raise ValueError("default_concurrency must be >= 1")
        self.default_concurrency = default_concurrency
        self.heartbeat_window = heartbeat_window
        self._concurrency_of = concurrency_of
        self._workers: dict[str, _Worker] = {}
        # hostname -> when it said worker-offline: its late task events don't bring it back
        self._offline: dict[str, float] = {}

    # -- events --------------------------------------------------------------------------------

    def apply(self, event: Mapping[str, Any], now: float) -> bool:
        """Take one event received at `now`; True when a published number may have changed."""
        kind = str(event.get("type", ""))
        hostname = event.get("hostname")
        if not hostname or not isinstance(hostname, str):
            return False
        if kind == "worker-offline":
            self._offline[hostname] = now
            return self._workers.pop(hostname, None) is not None
        if kind.startswith("worker-"):
            self._offline.pop(hostname, None)
        if kind == "worker-online":
            existed = self._workers.pop(hostname, None)
            worker = self._touch(hostname, event, now)
            return existed is None or existed.counts() != worker.counts()
        if kind.startswith("worker-"):  # heartbeat, or any future worker event: proof of life
            created = hostname not in self._workers
            worker = self._touch(hostname, event, now)
            before = worker.counts()
            if kind == "worker-heartbeat":
                self._reconcile(worker, event.get("active"))
            return created or worker.counts() != before
        if not kind.startswith("task-"):
            return False
        return self._task(kind, hostname, event.get("uuid"), event, now)

    def _touch(self, hostname: str, event: Mapping[str, Any], now: float) -> _Worker:
        worker = self._workers.get(hostname)
        freq = _positive_float(event.get("freq"))
        if worker is None:
            worker = _Worker(
                hostname,
                self._concurrency(hostname, event),
                freq or DEFAULT_FREQ,
                now,
            )
            self._workers[hostname] = worker
        else:
            worker.last_seen = max(worker.last_seen, now)
            if freq:
                worker.freq = freq
            reported = _positive_int(event.get("concurrency"))
            if reported:
                worker.concurrency = reported
        return worker

    def _concurrency(self, hostname: str, event: Mapping[str, Any]) -> int:
        reported = _positive_int(event.get("concurrency"))
        if reported:
            return reported
        if self._concurrency_of is not None:
            configured = self._concurrency_of(hostname)
            if configured and configured > 0:
                return configured
        return self.default_concurrency

    def _reconcile(self, worker: _Worker, reported: Any) -> None:
        count = _nonneg_int(reported)
        if count is None or count == worker.active_count:
            worker.disagreement = None
            return
        if worker.disagreement != count:  # first sighting: may be events still in flight
            worker.disagreement = count
            return
        worker.disagreement = None
        known = len(worker.active)
        if count >= known:
            worker.unknown_active = count - known
        else:  # finish events were lost: forget the oldest starts
            worker.unknown_active = 0
            for uuid, _ in sorted(worker.active.items(), key=lambda kv: kv[1])[: known - count]:
                del worker.active[uuid]

    def _task(
        self, kind: str, hostname: str, uuid: Any, event: Mapping[str, Any], now: float
    ) -> bool:
        worker = self._workers.get(hostname)
        created = worker is None
        if created and hostname in self._offline:
            return False  # a late event from a worker that has said goodbye
        worker = self._touch(hostname, event, now)
        before = worker.counts()
        if not uuid:
            return created
        uuid = str(uuid)
        if kind == "task-received":
            self._forget_elsewhere(uuid, hostname)
            if uuid not in worker.active:
                worker.reserved[uuid] = now
        elif kind == "task-started":
            self._forget_elsewhere(uuid, hostname)
            worker.reserved.pop(uuid, None)
            worker.active.setdefault(uuid, now)
        elif kind in TASK_DONE:
            was_active = worker.active.pop(uuid, None) is not None
            was_reserved = worker.reserved.pop(uuid, None) is not None
            if not (was_active or was_reserved) and kind in _RAN and worker.unknown_active:
                worker.unknown_active -= 1  # one of the tasks that ran before we listened
        return created or worker.counts() != before

    def _forget_elsewhere(self, uuid: str, hostname: str) -> None:
        """A redelivered task is no longer held by the worker that had it before."""
        for other in self._workers.values():
            if other.hostname != hostname:
                other.active.pop(uuid, None)
                other.reserved.pop(uuid, None)

    def set_concurrency(self, hostname: str, concurrency: int) -> bool:
        """The worker's own pool size (e.g. from `inspect stats`); True when it changed."""
        worker = self._workers.get(hostname)
        if worker is None or concurrency < 1 or worker.concurrency == concurrency:
            return False
        worker.concurrency = concurrency
        return True

    # -- time ------------------------------------------------------------------------------------

    def alive(self, hostname: str, now: float) -> bool:
        worker = self._workers.get(hostname)
        return worker is not None and self._alive(worker, now)

    def _alive(self, worker: _Worker, now: float) -> bool:
        return now - worker.last_seen <= self.heartbeat_window * worker.freq

    def expire(self, now: float) -> list[str]:
        """Forget the workers whose heartbeats stopped; returns their hostnames."""
        gone = [h for h, w in self._workers.items() if not self._alive(w, now)]
        for hostname in gone:
            del self._workers[hostname]
        horizon = self.heartbeat_window * DEFAULT_FREQ * 30
        for hostname, at in list(self._offline.items()):
            if now - at > horizon:
                del self._offline[hostname]
        return gone

    def forget_reserved(self) -> None:
        """After a gap in the event stream: reserved tasks can't be re-learnt from heartbeats, so
        the ones we knew may have started or finished unseen. Active counts heal by heartbeat."""
        for worker in self._workers.values():
            worker.reserved.clear()

    def reset(self) -> None:
        self._workers.clear()
        self._offline.clear()

    # -- readings --------------------------------------------------------------------------------

    @property
    def hostnames(self) -> frozenset[str]:
        return frozenset(self._workers)

    def workers(self, now: float) -> dict[str, PodLoad]:
        """Every live worker, by pod name (all ElasticWorkers)."""
        out: dict[str, PodLoad] = {}
        for worker in self._workers.values():
            if self._alive(worker, now):
                pod = pod_of(worker.hostname)
                out[pod] = PodLoad(
                    pod,
                    worker.hostname,
                    worker.active_count,
                    len(worker.reserved),
                    worker.concurrency,
                    worker.last_seen,
                )
        return out

    def snapshot(self, now: float, members: Callable[[str], bool] | None = None) -> Snapshot:
        """Readings at `now` over the live workers whose pod is a member (all when None).

        total_cluster_load = ceil(100 * sum(active) / sum(concurrency)); with zero live workers
        it is 0 over zero capacity: `Reading(0, now, workers=0)`.
        """
        pods = {
            pod: load for pod, load in self.workers(now).items() if members is None or members(pod)
        }
        active = sum(p.active for p in pods.values())
        capacity = sum(p.concurrency for p in pods.values())
        cluster = Reading(float(ceil_percent(active, capacity)), now, workers=len(pods))
        return Snapshot(now, MappingProxyType(dict(sorted(pods.items()))), cluster)


def _positive_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _positive_int(value: Any) -> int | None:
    number = _nonneg_int(value)
    return number if number else None


def _nonneg_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None
