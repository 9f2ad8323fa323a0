"""The values the decisions read and the actions they return."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class DrainStep(StrEnum):
    """Where a worker is in the drain protocol; recorded on its pod before it is acted on."""

    SERVING = "serving"
    CORDON_REQUESTED = "cordon-requested"
    CORDONED = "cordoned"
    MARKED = "marked"
    UNCORDON_REQUESTED = "uncordon-requested"


@dataclass(frozen=True)
class Reading:
    """A metric value with the time it was sampled (not the time it was read)."""

    value: float
    at: float
    # How many workers the cluster load was measured over, when the collector says so.
    workers: int | None = None

    def fresh(self, now: float, max_age: float) -> bool:
        return now - self.at <= max_age


@dataclass(frozen=True)
class TaskReport:
    """The worker's own answer to `inspect active` + `inspect reserved`."""

    active: int
    reserved: int
    at: float

    @property
    def empty(self) -> bool:
        return self.active == 0 and self.reserved == 0


@dataclass(frozen=True)
class DrainRecord:
    step: DrainStep = DrainStep.SERVING
    # When the current step began; for CORDONED, when the cordon was acknowledged.
    since: float | None = None
    report: TaskReport | None = None


@dataclass(frozen=True)
class PodView:
    """One worker pod as the controllers see it."""

    name: str
    phase: Phase
    created_at: float
    deleting: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    index: int = 0
    drain: DrainRecord = DrainRecord()
    load: Reading | None = None
    last_busy_at: float | None = None

    @property
    def live(self) -> bool:
        """Counted by the workers plan: neither finished nor on its way out."""
        return not self.deleting and self.phase in (Phase.PENDING, Phase.RUNNING)

    def has_labels(self, wanted: Mapping[str, str]) -> bool:
        return bool(wanted) and all(self.labels.get(k) == v for k, v in wanted.items())


@dataclass(frozen=True)
class Observation:
    """What a controller read in one sync."""

    now: float
    pods: tuple[PodView, ...]
    replicas: int  # the ElasticWorker's desired count as it stands
    cluster_load: Reading | None = None
    # KEDA's query reads task states from the Airflow database.
    running_tasks: int | None = None
    queued_tasks: int | None = None
    # The prototype's ElasticWorker status.actualReplicas.
    actual_replicas: int | None = None


# --- actions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetReplicas:
    """Write the ElasticWorker's `spec.replicas` (through the scale subresource)."""

    replicas: int


@dataclass(frozen=True)
class SetScale:
    """The prototype's write: overwrite the ElasticWorker's one-shot `spec.scale`."""

    delta: int


@dataclass(frozen=True)
class Cordon:
    """Record `cordon-requested`, cancel the worker's consumers, record `cordoned` + its tasks."""

    pod: str


@dataclass(frozen=True)
class Verify:
    """Ask a cordoned worker again for its active and reserved tasks."""

    pod: str


@dataclass(frozen=True)
class Mark:
    """Label the pod with `markForTerminationLabel`: the ElasticWorker may now delete it."""

    pod: str


@dataclass(frozen=True)
class Uncordon:
    """Record `uncordon-requested`, `add_consumer` back, record `serving`."""

    pod: str


@dataclass(frozen=True)
class Shutdown:
    """The prototype's hook call: a Flower warm-shutdown broadcast for each pod."""

    pods: tuple[str, ...]


Action = SetReplicas | SetScale | Cordon | Verify | Mark | Uncordon | Shutdown
