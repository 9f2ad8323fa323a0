"""Validation: defaults of the prototype's manifests, one error per rule, all errors at once."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controllers.api import (
    API_VERSION,
    SCALE_IN_POLICY_NAMES,
    ElasticWorker,
    ElasticWorkerAutoscaler,
    FieldError,
    InvalidResource,
    validate_elastic_worker,
    validate_elastic_worker_autoscaler,
)


def _set(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `obj` with the dotted `path` set (or removed when value is ...)."""
    out = copy.deepcopy(obj)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return out


def _errors(validate: Callable[[Any], Any], obj: Any) -> list[FieldError]:
    with pytest.raises(InvalidResource) as info:
        validate(obj)
    return info.value.errors


# --- the prototype's manifests ---------------------------------------------------------------


def test_prototype_elastic_worker_validates_with_its_values(prototype_ew: dict[str, Any]) -> None:
    ew = validate_elastic_worker(prototype_ew)
    assert ew.metadata.name == "elasticworker-sample"
    assert (ew.spec.min_replicas, ew.spec.max_replicas) == (2, 5)
    assert ew.spec.scale_in_policy.name == "selector"
    assert ew.spec.scale_in_policy.selector is not None
    assert ew.spec.scale_in_policy.selector.match_labels == {"delete": "true"}
    assert ew.spec.template.metadata.labels == {"app": "airflow-worker"}
    assert ew.spec.template.spec["containers"][0]["name"] == "airflow-worker"
    # The fields the prototype did not have take the values that keep its behaviour.
    assert ew.spec.replicas is None
    assert ew.spec.scale == 0
    assert ew.status is None


def test_elastic_worker_defaults(prototype_ew: dict[str, Any]) -> None:
    bare = {"spec": {"maxReplicas": 3}}
    ew = validate_elastic_worker(bare)
    assert ew.api_version == API_VERSION
    assert ew.kind == "ElasticWorker"
    assert ew.spec.min_replicas == 1
    assert ew.spec.scale_in_policy.name == "immediate"
    assert ew.spec.scale_in_policy.selector is None
    assert ew.spec.template.metadata.labels == {}

    no_policy = _set(prototype_ew, "spec.scaleInPolicy", ...)
    assert validate_elastic_worker(no_policy).spec.scale_in_policy.name == "immediate"


def test_prototype_autoscaler_validates_with_defaults(prototype_ewa: dict[str, Any]) -> None:
    ewa = validate_elastic_worker_autoscaler(prototype_ewa)
    assert ewa.spec.target_value == 60
    assert ewa.spec.scale_target_ref.name == "elasticworker-sample"
    assert ewa.spec.scale_target_ref.kind == "ElasticWorker"
    assert ewa.spec.scale_target_ref.api_version == API_VERSION
    assert ewa.spec.metric_spec.max_age_seconds == 30
    assert ewa.spec.scale_in_spec.scale_in_back_off == 30
    assert ewa.spec.scale_in_spec.hook_timeout_seconds == 10
    assert ewa.spec.scale_in_spec.hook_token_secret_ref is None
    assert ewa.spec.behavior.tolerance == 0
    assert ewa.spec.behavior.scale_down_stabilization_seconds == 0
    assert ewa.spec.scale_in_below == pytest.approx(42.0)


def test_autoscaler_defaults_when_scale_in_spec_is_absent(prototype_ewa: dict[str, Any]) -> None:
    ewa = validate_elastic_worker_autoscaler(_set(prototype_ewa, "spec.scaleInSpec", ...))
    spec = ewa.spec.scale_in_spec
    assert spec.scale_in_back_off == 30
    assert spec.mark_for_termination_label == {"delete": "true"}
    assert spec.pod_metric_spec.name == "load"
    assert spec.shutdown_http_hook is None
    assert ewa.spec.metric_spec.name == "total_cluster_load"


@pytest.mark.parametrize("back_off", [0, ...])
def test_zero_or_missing_back_off_means_30(prototype_ewa: dict[str, Any], back_off: Any) -> None:
    manifest = _set(prototype_ewa, "spec.scaleInSpec.scaleInBackOff", back_off)
    assert validate_elastic_worker_autoscaler(manifest).spec.scale_in_spec.scale_in_back_off == 30


def test_explicit_back_off_is_kept(prototype_ewa: dict[str, Any]) -> None:
    manifest = _set(prototype_ewa, "spec.scaleInSpec.scaleInBackOff", 90)
    assert validate_elastic_worker_autoscaler(manifest).spec.scale_in_spec.scale_in_back_off == 90


def test_replicas_outside_the_range_is_not_an_error(prototype_ew: dict[str, Any]) -> None:
    # The controller clamps it: the scale subresource may write any count.
    for replicas in (0, 1, 9):
        manifest = _set(prototype_ew, "spec.replicas", replicas)
        assert validate_elastic_worker(manifest).spec.replicas == replicas


def test_scale_may_be_negative(prototype_ew: dict[str, Any]) -> None:
    assert validate_elastic_worker(_set(prototype_ew, "spec.scale", -3)).spec.scale == -3


def test_python_names_are_accepted_too() -> None:
    ew = ElasticWorker.model_validate({"spec": {"max_replicas": 4, "min_replicas": 2}})
    assert (ew.spec.min_replicas, ew.spec.max_replicas) == (2, 4)


def test_cross_field_rules_hold_for_python_names_too() -> None:
    manifest = {
        "spec": {
            "min_replicas": 5,
            "max_replicas": 2,
            "scale_in_policy": {"name": "selector"},
        }
    }
    paths = sorted(e.path for e in _errors(validate_elastic_worker, manifest))
    assert paths == ["spec.minReplicas", "spec.scaleInPolicy.selector"]


# --- one error per rule ----------------------------------------------------------------------

EW_CASES: list[tuple[str, Any, str, str]] = [
    ("spec.minReplicas", -1, "spec.minReplicas", "must be >= 0 (got -1)"),
    ("spec.minReplicas", 6, "spec.minReplicas", "must be <= spec.maxReplicas (6 > 5)"),
    ("spec.maxReplicas", 0, "spec.maxReplicas", "must be >= 1 (got 0)"),
    ("spec.maxReplicas", ..., "spec.maxReplicas", "is required"),
    ("spec.maxReplicas", "5", "spec.maxReplicas", "must be an integer (got '5')"),
    ("spec.maxReplicas", True, "spec.maxReplicas", "must be an integer (got True)"),
    ("spec.replicas", -1, "spec.replicas", "must be >= 0 (got -1)"),
    ("spec.scale", 1.5, "spec.scale", "must be an integer"),
    (
        "spec.scaleInPolicy.name",
        "oldest",
        "spec.scaleInPolicy.name",
        "must be one of immediate, selector, disabled (got 'oldest')",
    ),
    ("spec.scaleInPolicy.selector", ..., "spec.scaleInPolicy.selector", "is required when name"),
    ("spec.scaleInPolicy.selector", {}, "spec.scaleInPolicy.selector", "must not be empty"),
    (
        "spec.scaleInPolicy.selector",
        {"matchLabels": {}, "matchExpressions": []},
        "spec.scaleInPolicy.selector",
        "must not be empty",
    ),
    (
        "spec.selector",
        {"matchLabels": {"app": "scheduler"}},
        "spec.selector",
        "does not match spec.template.metadata.labels",
    ),
    (
        "spec.selector",
        {"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]},
        "spec.selector",
        "does not match",
    ),
    (
        "spec.selector",
        {"matchExpressions": [{"key": "app", "operator": "In"}]},
        "spec.selector.matchExpressions[0].values",
        "must not be empty for operator In",
    ),
    (
        "spec.selector",
        {"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]},
        "spec.selector.matchExpressions[0].values",
        "must be empty for operator Exists",
    ),
    (
        "spec.selector",
        {"matchExpressions": [{"key": "app", "operator": "Like", "values": ["x"]}]},
        "spec.selector.matchExpressions[0].operator",
        "must be one of In, NotIn, Exists, DoesNotExist",
    ),
    ("spec.minReplica", 2, "spec.minReplica", "unknown field (did you mean 'minReplicas'?)"),
    ("spec.template.metadata.labels", {"app": 1}, "spec.template.metadata.labels[app]", "string"),
    ("spec.template.metadata.name", "x", "spec.template.metadata.name", "unknown field"),
    ("spec.template.spec", [], "spec.template.spec", "must be an object"),
    ("kind", "Deployment", "kind", "must be ElasticWorker (got 'Deployment')"),
    ("spec", None, "spec", "must be an object"),
]


@pytest.mark.parametrize(
    ("where", "value", "path", "message"), EW_CASES, ids=[f"{c[0]}={c[1]!r}" for c in EW_CASES]
)
def test_elastic_worker_rule_names_the_field(
    prototype_ew: dict[str, Any], where: str, value: Any, path: str, message: str
) -> None:
    errors = _errors(validate_elastic_worker, _set(prototype_ew, where, value))
    named = [e for e in errors if e.path == path]
    assert named, errors
    assert message in named[0].message
    # Exactly one problem was introduced; only max < 1 also breaks min <= max.
    assert len(errors) == 1 or {e.path for e in errors} == {path, "spec.minReplicas"}, errors


EWA_CASES: list[tuple[str, Any, str, str]] = [
    ("spec.targetValue", 0, "spec.targetValue", "must be > 0 (got 0)"),
    ("spec.targetValue", -5, "spec.targetValue", "must be > 0 (got -5)"),
    ("spec.targetValue", 101, "spec.targetValue", "must be <= 100 (got 101)"),
    ("spec.targetValue", ..., "spec.targetValue", "is required"),
    ("spec.targetValue", "60%", "spec.targetValue", "must be an integer"),
    ("spec.scaleTargetRef", ..., "spec.scaleTargetRef", "is required"),
    ("spec.scaleTargetRef.name", ..., "spec.scaleTargetRef.name", "is required"),
    ("spec.scaleTargetRef.name", "", "spec.scaleTargetRef.name", "must not be empty"),
    ("spec.metricSpec.maxAgeSeconds", -1, "spec.metricSpec.maxAgeSeconds", "must be >= 0"),
    (
        "spec.scaleInSpec.scaleInBackOff",
        -1,
        "spec.scaleInSpec.scaleInBackOff",
        "must be >= 0 (got -1)",
    ),
    (
        "spec.scaleInSpec.shutdownHttpHook",
        "shutdown-hook:5559/api",
        "spec.scaleInSpec.shutdownHttpHook",
        "must be an http or https URL with a host (got 'shutdown-hook:5559/api')",
    ),
    (
        "spec.scaleInSpec.shutdownHttpHook",
        "ftp://hook/api",
        "spec.scaleInSpec.shutdownHttpHook",
        "http or https",
    ),
    (
        "spec.scaleInSpec.shutdownHttpHook",
        "http:///api",
        "spec.scaleInSpec.shutdownHttpHook",
        "host",
    ),
    (
        "spec.scaleInSpec.shutdownHttpHook",
        "http://[::1/",
        "spec.scaleInSpec.shutdownHttpHook",
        "URL",
    ),
    (
        "spec.scaleInSpec.markForTerminationLabel",
        {},
        "spec.scaleInSpec.markForTerminationLabel",
        "must not be empty",
    ),
    (
        "spec.scaleInSpec.markForTerminationLabel",
        {"delete": True},
        "spec.scaleInSpec.markForTerminationLabel[delete]",
        "must be a string",
    ),
    ("spec.scaleInSpec.hookTimeoutSeconds", 0, "spec.scaleInSpec.hookTimeoutSeconds", "must be >"),
    (
        "spec.scaleInSpec.hookTokenSecretRef",
        {"key": "t"},
        "spec.scaleInSpec.hookTokenSecretRef.name",
        "is required",
    ),
    ("spec.behavior.tolerance", 1, "spec.behavior.tolerance", "must be < 1"),
    ("spec.behavior.tolerance", -0.1, "spec.behavior.tolerance", "must be >= 0"),
    (
        "spec.behavior.scaleDownStabilizationSeconds",
        -1,
        "spec.behavior.scaleDownStabilizationSeconds",
        "must be >= 0 (got -1)",
    ),
    (
        "spec.scaleInSpec.scaleInBackof",
        5,
        "spec.scaleInSpec.scaleInBackof",
        "unknown field (did you mean 'scaleInBackOff'?)",
    ),
]


@pytest.mark.parametrize(
    ("where", "value", "path", "message"), EWA_CASES, ids=[f"{c[0]}={c[1]!r}" for c in EWA_CASES]
)
def test_autoscaler_rule_names_the_field(
    prototype_ewa: dict[str, Any], where: str, value: Any, path: str, message: str
) -> None:
    errors = _errors(validate_elastic_worker_autoscaler, _set(prototype_ewa, where, value))
    named = [e for e in errors if e.path == path]
    assert named, errors
    assert message in named[0].message
    # Exactly one problem was introduced; only max < 1 also breaks min <= max.
    assert len(errors) == 1 or {e.path for e in errors} == {path, "spec.minReplicas"}, errors


def test_https_hook_and_tolerance_inside_the_range_are_valid(prototype_ewa: dict[str, Any]) -> None:
    manifest = _set(prototype_ewa, "spec.scaleInSpec.shutdownHttpHook", "https://hook:8443/drain")
    manifest = _set(
        manifest, "spec.behavior", {"tolerance": 0.1, "scaleDownStabilizationSeconds": 300}
    )
    ewa = validate_elastic_worker_autoscaler(manifest)
    assert ewa.spec.behavior.tolerance == pytest.approx(0.1)
    assert ewa.spec.behavior.scale_down_stabilization_seconds == 300


def test_policy_error_lists_the_allowed_names(prototype_ew: dict[str, Any]) -> None:
    errors = _errors(validate_elastic_worker, _set(prototype_ew, "spec.scaleInPolicy.name", "x"))
    assert all(name in errors[0].message for name in SCALE_IN_POLICY_NAMES)


# --- all errors at once ----------------------------------------------------------------------


def test_all_errors_are_reported_together(prototype_ew: dict[str, Any]) -> None:
    manifest = copy.deepcopy(prototype_ew)
    manifest["spec"].update(
        {
            "minReplicas": -1,
            "maxReplicas": 0,
            "replicas": -2,
            "scaleInPolicy": {"name": "oldest"},
            "selector": {"matchLabels": {"app": "other"}},
            "typo": 1,
        }
    )
    with pytest.raises(InvalidResource) as info:
        validate_elastic_worker(manifest)
    paths = sorted(e.path for e in info.value.errors)
    assert paths == [
        "spec.maxReplicas",
        "spec.minReplicas",
        "spec.replicas",
        "spec.scaleInPolicy.name",
        "spec.selector",
        "spec.typo",
    ]
    text = str(info.value)
    assert "spec.minReplicas: must be >= 0 (got -1); " in text
    assert text.count("; ") == len(info.value.errors) - 1


def test_cross_field_errors_survive_a_type_error(prototype_ew: dict[str, Any]) -> None:
    # pydantic builds no model when a field is wrong; min > max must still be reported.
    manifest = _set(prototype_ew, "spec.minReplicas", 7)
    manifest = _set(manifest, "spec.scale", "three")
    paths = [e.path for e in _errors(validate_elastic_worker, manifest)]
    assert sorted(paths) == ["spec.minReplicas", "spec.scale"]


def test_autoscaler_errors_are_reported_together(prototype_ewa: dict[str, Any]) -> None:
    manifest = copy.deepcopy(prototype_ewa)
    manifest["spec"]["targetValue"] = 0
    manifest["spec"]["scaleInSpec"].update({"scaleInBackOff": -5, "shutdownHttpHook": "nope"})
    manifest["spec"]["behavior"] = {"tolerance": 2}
    errors = _errors(validate_elastic_worker_autoscaler, manifest)
    assert len(errors) == 4
    assert str(InvalidResource(errors)).count("; ") == 3


def test_str_of_the_error_is_path_colon_message() -> None:
    error = InvalidResource([FieldError("spec.a", "bad"), FieldError("spec.b", "worse")])
    assert str(error) == "spec.a: bad; spec.b: worse"
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    "junk", [None, [], "text", 3, {"spec": []}, {"spec": {"maxReplicas": None}}]
)
def test_junk_is_an_invalid_resource_not_a_crash(junk: Any) -> None:
    with pytest.raises(InvalidResource):
        validate_elastic_worker(junk)
    with pytest.raises(InvalidResource):
        validate_elastic_worker_autoscaler(junk)


# --- round trip ------------------------------------------------------------------------------


def _full_status_ew(manifest: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(manifest)
    out["metadata"].update(
        {
            "uid": "1234",
            "generation": 3,
            "resourceVersion": "99",
            "labels": {"team": "data"},
            "managedFields": [{"manager": "kubectl"}],
            "ownerReferences": [{"kind": "X", "name": "y", "uid": "z", "apiVersion": "v1"}],
        }
    )
    out["spec"]["replicas"] = 3
    out["status"] = {
        "objectStatus": "Valid",
        "actualReplicas": 3,
        "replicas": 3,
        "desiredReplicas": 3,
        "readyReplicas": 2,
        "selector": "app=airflow-worker",
        "observedGeneration": 3,
        "nextPodIndex": 7,
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "PodsStarting",
                "message": "2 of 3 ready",
                "lastTransitionTime": "2024-05-01T12:00:00Z",
                "observedGeneration": 3,
            }
        ],
    }
    return out


def test_elastic_worker_round_trips(prototype_ew: dict[str, Any]) -> None:
    manifest = _full_status_ew(prototype_ew)
    first = validate_elastic_worker(manifest)
    dumped = first.model_dump(by_alias=True, exclude_none=True)
    again = validate_elastic_worker(dumped)
    assert again == first
    assert again.model_dump(by_alias=True, exclude_none=True) == dumped
    # What the manifest said is what the dump says (defaults are only added).
    assert dumped["spec"]["template"]["spec"] == manifest["spec"]["template"]["spec"]
    assert dumped["spec"]["template"]["metadata"]["labels"] == {"app": "airflow-worker"}
    assert dumped["metadata"]["managedFields"] == [{"manager": "kubectl"}]
    assert dumped["status"] == manifest["status"]


def test_autoscaler_round_trips(prototype_ewa: dict[str, Any]) -> None:
    manifest = copy.deepcopy(prototype_ewa)
    manifest["spec"]["scaleInSpec"]["hookTokenSecretRef"] = {"name": "hook-token"}
    manifest["status"] = {
        "observedGeneration": 1,
        "conditions": [{"type": "ScalingActive", "status": "True", "reason": "Ok"}],
        "currentLoad": 55,
        "loadTimestamp": "2024-05-01T12:00:03Z",
        "currentReplicas": 4,
        "desiredReplicas": 3,
        "lowLoadSince": "2024-05-01T11:59:30+00:00",
        "lastScaleTime": "2024-05-01T11:50:00Z",
        "draining": [
            {"pod": "w-replica-3", "step": "cordoned", "since": "2024-05-01T12:00:00Z"},
            {
                "pod": "w-replica-4",
                "step": "marked",
                "since": "2024-05-01T12:00:00Z",
                "active": 0,
                "reserved": 0,
                "reportedAt": "2024-05-01T12:00:02Z",
            },
        ],
    }
    first = validate_elastic_worker_autoscaler(manifest)
    assert first.spec.scale_in_spec.hook_token_secret_ref is not None
    assert first.spec.scale_in_spec.hook_token_secret_ref.key == "token"
    dumped = first.model_dump(by_alias=True, exclude_none=True)
    assert validate_elastic_worker_autoscaler(dumped) == first
    assert dumped["status"]["draining"] == manifest["status"]["draining"]


def test_models_built_in_python_dump_to_valid_manifests() -> None:
    ewa = ElasticWorkerAutoscaler.model_validate(
        {"spec": {"scaleTargetRef": {"name": "w"}, "targetValue": 60}}
    )
    assert validate_elastic_worker_autoscaler(ewa.model_dump(by_alias=True, exclude_none=True))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("since", "yesterday", "RFC 3339"),
        ("since", "2024-05-01T12:00:00", "with a zone"),
        ("since", "2024-05-01", "RFC 3339"),
        ("step", "deleted", "must be one of serving, cordon-requested"),
        ("active", -1, "must be >= 0"),
    ],
)
def test_drain_entries_are_checked(
    prototype_ewa: dict[str, Any], field: str, value: Any, message: str
) -> None:
    entry = {"pod": "w-1", "step": "cordoned", "since": "2024-05-01T12:00:00Z", field: value}
    manifest = {**prototype_ewa, "status": {"draining": [entry]}}
    errors = _errors(validate_elastic_worker_autoscaler, manifest)
    assert [e.path for e in errors] == [f"status.draining[0].{field}"]
    assert message in errors[0].message


# --- properties ------------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_EW_PATHS = [
    "spec",
    "spec.minReplicas",
    "spec.scaleInPolicy",
    "spec.scaleInPolicy.selector",
    "spec.selector",
    "spec.selector.matchExpressions",
    "spec.template",
    "spec.template.metadata",
    "spec.template.metadata.labels",
    "metadata",
    "status",
    "status.conditions",
]
_EWA_PATHS = [
    "spec.scaleTargetRef",
    "spec.scaleInSpec",
    "spec.scaleInSpec.shutdownHttpHook",
    "spec.scaleInSpec.markForTerminationLabel",
    "spec.behavior",
    "status.draining",
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(_EW_PATHS + _EWA_PATHS), junk=_JSON)
def test_any_junk_gives_named_errors_never_a_crash(
    prototype_ew: dict[str, Any], prototype_ewa: dict[str, Any], path: str, junk: Any
) -> None:
    is_ew = path in _EW_PATHS
    manifest = _set(prototype_ew if is_ew else prototype_ewa, path, junk)
    validate = validate_elastic_worker if is_ew else validate_elastic_worker_autoscaler
    try:
        validate(manifest)
    except InvalidResource as exc:
        assert exc.errors
        assert all(e.path and e.message for e in exc.errors)


@given(
    low=st.integers(min_value=0, max_value=8),
    high=st.integers(min_value=1, max_value=8),
    replicas=st.none() | st.integers(min_value=0, max_value=12),
    scale=st.integers(min_value=-5, max_value=5),
    policy=st.sampled_from(SCALE_IN_POLICY_NAMES),
)
def test_counts_are_valid_exactly_when_min_le_max(
    low: int, high: int, replicas: int | None, scale: int, policy: str
) -> None:
    spec: dict[str, Any] = {
        "minReplicas": low,
        "maxReplicas": high,
        "scale": scale,
        "scaleInPolicy": {"name": policy, "selector": {"matchLabels": {"delete": "true"}}},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    try:
        ew = validate_elastic_worker({"spec": spec})
    except InvalidResource as exc:
        assert low > high
        assert [e.path for e in exc.errors] == ["spec.minReplicas"]
    else:
        assert low <= high
        assert validate_elastic_worker(ew.model_dump(by_alias=True, exclude_none=True)) == ew
