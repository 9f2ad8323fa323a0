"""The two custom resources: typed models, defaults, validation, and the CRDs made from them.

- `models.py`      ElasticWorker and ElasticWorkerAutoscaler (spec, status) and the API constants.
- `selectors.py`   label selectors: model, matching, the `a=b,c in (d)` string form.
- `validation.py`  manifest dict -> model, or InvalidResource naming every bad field.
- `timestamps.py`  the RFC 3339 strings used in status.
- `structural.py`  pydantic JSON schema -> the structural schema Kubernetes requires.
- `crd.py`         the CRD YAML (`python -m controllers.api.crd --out kind-config/crds`).
"""

from controllers.api.models import (
    API_VERSION,
    AUTOSCALER_KIND,
    AUTOSCALER_PLURAL,
    CONDITION_READY,
    DEFAULT_SCALE_IN_BACK_OFF,
    DRAIN_STEPS,
    ELASTIC_WORKER_KIND,
    ELASTIC_WORKER_PLURAL,
    GROUP,
    SCALE_IN_POLICY_NAMES,
    SCALE_IN_RATIO,
    VERSION,
    Behavior,
    Condition,
    DrainEntry,
    DrainStep,
    ElasticWorker,
    ElasticWorkerAutoscaler,
    ElasticWorkerAutoscalerSpec,
    ElasticWorkerAutoscalerStatus,
    ElasticWorkerSpec,
    ElasticWorkerStatus,
    MetricSpec,
    ObjectMeta,
    PodMetricSpec,
    PodTemplate,
    PodTemplateMetadata,
    ScaleInPolicy,
    ScaleInPolicyName,
    ScaleInSpec,
    ScaleTargetRef,
    SecretKeyRef,
)
from controllers.api.selectors import (
    LabelSelector,
    LabelSelectorRequirement,
    selector_matches,
    selector_to_string,
)
from controllers.api.timestamps import Rfc3339, format_rfc3339, parse_rfc3339
from controllers.api.validation import (
    FieldError,
    InvalidResource,
    validate_elastic_worker,
    validate_elastic_worker_autoscaler,
)

__all__ = [
    "API_VERSION",
    "AUTOSCALER_KIND",
    "AUTOSCALER_PLURAL",
    "CONDITION_READY",
    "DEFAULT_SCALE_IN_BACK_OFF",
    "DRAIN_STEPS",
    "ELASTIC_WORKER_KIND",
    "ELASTIC_WORKER_PLURAL",
    "GROUP",
    "SCALE_IN_POLICY_NAMES",
    "SCALE_IN_RATIO",
    "VERSION",
    "Behavior",
    "Condition",
    "DrainEntry",
    "DrainStep",
    "ElasticWorker",
    "ElasticWorkerAutoscaler",
    "ElasticWorkerAutoscalerSpec",
    "ElasticWorkerAutoscalerStatus",
    "ElasticWorkerSpec",
    "ElasticWorkerStatus",
    "FieldError",
    "InvalidResource",
    "LabelSelector",
    "LabelSelectorRequirement",
    "MetricSpec",
    "ObjectMeta",
    "PodMetricSpec",
    "PodTemplate",
    "PodTemplateMetadata",
    "Rfc3339",
    "ScaleInPolicy",
    "ScaleInPolicyName",
    "ScaleInSpec",
    "ScaleTargetRef",
    "SecretKeyRef",
    "format_rfc3339",
    "parse_rfc3339",
    "selector_matches",
    "selector_to_string",
    "validate_elastic_worker",
    "validate_elastic_worker_autoscaler",
]
