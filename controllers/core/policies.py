"""The four policies by name: who decides, how often, which pod a delete takes, how pods die."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from controllers.core.decision import AutoscalerMemory, Decision
from controllers.core.drain import decide_drain
from controllers.core.peers import HPA_SYNC_PERIOD, KEDA_GRACE, KEDA_POLL, decide_hpa, decide_keda
from controllers.core.seed import SEED_SYNC_PERIOD, decide_seed
from controllers.core.specs import AutoscalerSpec
from controllers.core.types import Observation, PodView
from controllers.core.victims import replicaset_order, statefulset_order

Decide = Callable[[AutoscalerSpec, Observation, AutoscalerMemory], Decision]


@dataclass(frozen=True)
class Policy:
    name: str
    decide: Decide
    # The ElasticWorker scale-in policy it runs with; None keeps the scenario's.
    workerset_policy: str | None
    ranking: Callable[[list[PodView]], list[PodView]]
    sync_period: float | None  # None: the scenario's
    grace: float | None  # None: the scenario's termination_grace
    sigterm_ignored: bool = False  # the prototype's PID 1 (bash) ignored SIGTERM
    prototype_workerset: bool = False  # the prototype's ElasticWorker reconcile


POLICIES: dict[str, Policy] = {
    "drain": Policy("drain", decide_drain, "selector", replicaset_order, None, None),
    "seed": Policy(
        "seed",
        decide_seed,
        None,
        replicaset_order,
        SEED_SYNC_PERIOD,
        None,
        sigterm_ignored=True,
        prototype_workerset=True,
    ),
    "hpa": Policy("hpa", decide_hpa, "immediate", replicaset_order, HPA_SYNC_PERIOD, None),
    "keda": Policy("keda", decide_keda, "immediate", statefulset_order, KEDA_POLL, KEDA_GRACE),
}

DEFAULT_POLICY = "drain"


def get_policy(name: str) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}: choose one of {', '.join(POLICIES)}") from None
