"""The two custom resources, ElasticWorker and ElasticWorkerAutoscaler, as pydantic models.

Wire names are the prototype's camelCase so that its manifests keep working; every field the
prototype did not have is optional with a default that keeps the prototype's behaviour.
Range rules that concern one field live here as constraints (they become `minimum`/`maximum` in
the CRD); rules that relate two fields live in `validation.py`.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from controllers.api.base import ApiModel, OpenModel
from controllers.api.selectors import LabelSelector
from controllers.api.timestamps import Rfc3339
from controllers.core.specs import SCALE_IN_RATIO

GROUP = "elasticcluster.sarweshsuman.com"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"

ELASTIC_WORKER_KIND = "ElasticWorker"
ELASTIC_WORKER_PLURAL = "elasticworkers"
AUTOSCALER_KIND = "ElasticWorkerAutoscaler"
AUTOSCALER_PLURAL = "elasticworkerautoscalers"

# The prototype read a scaleInBackOff of 0 as "not set"; manifests rely on it meaning 30 s.
DEFAULT_SCALE_IN_BACK_OFF = 30

ScaleInPolicyName = Literal["immediate", "selector", "disabled"]
SCALE_IN_POLICY_NAMES: tuple[str, ...] = ("immediate", "selector", "disabled")

DrainStep = Literal["serving", "cordon-requested", "cordoned", "marked", "uncordon-requested"]
DRAIN_STEPS: tuple[str, ...] = (
    "serving",
    "cordon-requested",
    "cordoned",
    "marked",
    "uncordon-requested",
)

# The condition the ElasticWorker printer column "Ready" shows.
CONDITION_READY = "Ready"

# Conditions and drain entries are keyed, so server-side apply merges them instead of replacing.
_CONDITIONS_LIST = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}
_DRAINING_LIST = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["pod"]}


class ObjectMeta(OpenModel):
    """The object's metadata; the API server owns it, so any key it adds is kept."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[dict[str, Any]] | None = None
    finalizers: list[str] | None = None


class Condition(ApiModel):
    """A `metav1.Condition`: the latest observation of one aspect of the object."""

    type: str = Field(min_length=1)
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: Rfc3339 | None = None
    observed_generation: int | None = None


# ---------------------------------------------------------------------------------------------
# ElasticWorker


class ScaleInPolicy(ApiModel):
    """Which pods the controller may delete when there are too many."""

    name: ScaleInPolicyName = Field(
        "immediate",
        description="immediate: any pod; selector: only pods matching `selector`; "
        "disabled: never delete.",
    )
    selector: LabelSelector | None = Field(
        None, description="Pods eligible for deletion under the `selector` policy."
    )


class PodTemplateMetadata(ApiModel):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class PodTemplate(ApiModel):
    """The worker pod to create; `spec` is a Kubernetes PodSpec, passed through unmodelled."""

    metadata: PodTemplateMetadata = Field(default_factory=PodTemplateMetadata)
    spec: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class ElasticWorkerSpec(ApiModel):
    min_replicas: int = Field(1, ge=0, description="Fewest worker pods.")
    max_replicas: int = Field(ge=1, description="Most worker pods.")
    replicas: int | None = Field(
        None,
        ge=0,
        description="Desired pod count, written by the autoscaler through the scale "
        "subresource; clamped to [minReplicas, maxReplicas].",
    )
    scale: int = Field(
        0,
        description="One-shot signed delta added to the desired count, then reset to 0.",
    )
    scale_in_policy: ScaleInPolicy = Field(default_factory=ScaleInPolicy)
    selector: LabelSelector | None = Field(
        None, description="The pods that belong to this ElasticWorker; must match the template."
    )
    template: PodTemplate = Field(default_factory=PodTemplate)

    def pod_selector(self) -> LabelSelector:
        """The selector for this worker set's pods: `selector`, else the template's labels."""
        if self.selector is not None:
            return self.selector
        return LabelSelector(match_labels=dict(self.template.metadata.labels))


class ElasticWorkerStatus(ApiModel):
    object_status: Literal["Valid", "InValid"] | None = Field(
        None, description="Kept for the prototype; see conditions."
    )
    actual_replicas: int | None = None
    replicas: int | None = Field(None, description="Live pods, for the scale subresource.")
    desired_replicas: int | None = None
    ready_replicas: int | None = None
    selector: str | None = Field(None, description="Pod selector, for the scale subresource.")
    observed_generation: int | None = None
    next_pod_index: int | None = None
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=_CONDITIONS_LIST)


class ElasticWorker(ApiModel):
    """A pool of Airflow Celery worker pods between minReplicas and maxReplicas."""

    api_version: Literal["elasticcluster.sarweshsuman.com/v1"] = API_VERSION
    kind: Literal["ElasticWorker"] = ELASTIC_WORKER_KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ElasticWorkerSpec
    status: ElasticWorkerStatus | None = None


# ---------------------------------------------------------------------------------------------
# ElasticWorkerAutoscaler


class ScaleTargetRef(ApiModel):
    api_version: str = API_VERSION
    kind: str = ELASTIC_WORKER_KIND
    name: str = Field(min_length=1)


class MetricSpec(ApiModel):
    name: str = Field("total_cluster_load", description="Cluster load metric, percent.")
    max_age_seconds: int = Field(
        30, ge=0, description="A reading older than this is unknown, never 0."
    )


class PodMetricSpec(ApiModel):
    name: str = Field("load", description="Per-pod load metric, percent.")


class SecretKeyRef(ApiModel):
    name: str = Field(min_length=1)
    key: str = Field("token", min_length=1)


class ScaleInSpec(ApiModel):
    shutdown_http_hook: str | None = Field(
        None,
        description="Drain hook URL (http or https); receives "
        '`POST {"shutdown_workers": [pod names]}`.',
        json_schema_extra={"pattern": r"^https?://[^/?#\s]+"},
    )
    pod_metric_spec: PodMetricSpec = Field(default_factory=PodMetricSpec)
    mark_for_termination_label: dict[str, str] = Field(
        default_factory=lambda: {"delete": "true"},
        min_length=1,
        description="Label put on a drained pod; the ElasticWorker's selector policy deletes it.",
    )
    scale_in_back_off: int = Field(
        DEFAULT_SCALE_IN_BACK_OFF,
        ge=0,
        description="Seconds load must stay low before scale-in; 0 means 30 (the prototype).",
    )
    hook_timeout_seconds: float = Field(10.0, gt=0)
    hook_token_secret_ref: SecretKeyRef | None = Field(
        None, description="Bearer token for the hook, from a Secret in the same namespace."
    )

    @field_validator("shutdown_http_hook")
    @classmethod
    def _hook_is_http_url(cls, url: str | None) -> str | None:
        if url is None:
            return url
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            host = None
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not host:
            raise ValueError(f"must be an http or https URL with a host (got {url!r})")
        return url

    @field_validator("scale_in_back_off")
    @classmethod
    def _zero_back_off_means_default(cls, seconds: int) -> int:
        return seconds or DEFAULT_SCALE_IN_BACK_OFF


class Behavior(ApiModel):
    """HPA-like damping; the defaults switch it off, as in the prototype."""

    tolerance: float = Field(
        0.0, ge=0, lt=1, description="Ignore |load/target - 1| up to this ratio."
    )
    scale_down_stabilization_seconds: int = Field(
        0, ge=0, description="Scale in to the highest recommendation of this window."
    )


class ElasticWorkerAutoscalerSpec(ApiModel):
    scale_target_ref: ScaleTargetRef
    metric_spec: MetricSpec = Field(default_factory=MetricSpec)
    target_value: int = Field(gt=0, le=100, description="Target percent of busy worker slots.")
    scale_in_spec: ScaleInSpec = Field(default_factory=ScaleInSpec)
    behavior: Behavior = Field(default_factory=Behavior)

    @property
    def scale_in_below(self) -> float:
        """Load under which scale-in may start (after the back-off)."""
        return SCALE_IN_RATIO * self.target_value


class DrainEntry(ApiModel):
    """Where one worker stands in the drain protocol."""

    pod: str = Field(min_length=1)
    step: DrainStep
    since: Rfc3339
    active: int | None = Field(None, ge=0)
    reserved: int | None = Field(None, ge=0)
    reported_at: Rfc3339 | None = None


class ElasticWorkerAutoscalerStatus(ApiModel):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=_CONDITIONS_LIST)
    current_load: int | None = None
    load_timestamp: Rfc3339 | None = None
    current_replicas: int | None = None
    desired_replicas: int | None = None
    low_load_since: Rfc3339 | None = None
    last_scale_time: Rfc3339 | None = None
    draining: list[DrainEntry] = Field(default_factory=list, json_schema_extra=_DRAINING_LIST)


class ElasticWorkerAutoscaler(ApiModel):
    """Scales an ElasticWorker on cluster load and drains workers before they go."""

    api_version: Literal["elasticcluster.sarweshsuman.com/v1"] = API_VERSION
    kind: Literal["ElasticWorkerAutoscaler"] = AUTOSCALER_KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ElasticWorkerAutoscalerSpec
    status: ElasticWorkerAutoscalerStatus | None = None
