"""From validated resources to the plain specs the pure core reads."""

from __future__ import annotations

from controllers.api.models import ElasticWorker, ElasticWorkerAutoscaler
from controllers.core.specs import AutoscalerSpec, WorkerSetSpec


def workerset_spec(ew: ElasticWorker, policy: str | None = None) -> WorkerSetSpec:
    """`policy` overrides the scale-in policy name (the simulator's peers run `immediate`)."""
    spec = ew.spec
    selector = spec.scale_in_policy.selector
    return WorkerSetSpec(
        name=ew.metadata.name or "elasticworker",
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
        replicas=spec.replicas,
        scale=spec.scale,
        policy=policy or spec.scale_in_policy.name,
        policy_selector=dict(selector.match_labels) if selector else {},
        labels=dict(spec.template.metadata.labels),
        annotations=dict(spec.template.metadata.annotations),
    )


def autoscaler_spec(
    ewa: ElasticWorkerAutoscaler, ew: ElasticWorker, concurrency: int = 1
) -> AutoscalerSpec:
    spec = ewa.spec
    return AutoscalerSpec(
        target=float(spec.target_value),
        min_replicas=ew.spec.min_replicas,
        max_replicas=ew.spec.max_replicas,
        back_off=float(spec.scale_in_spec.scale_in_back_off),
        metric_max_age=float(spec.metric_spec.max_age_seconds),
        tolerance=spec.behavior.tolerance,
        stabilization=float(spec.behavior.scale_down_stabilization_seconds),
        mark_label=dict(spec.scale_in_spec.mark_for_termination_label),
        concurrency=concurrency,
    )
