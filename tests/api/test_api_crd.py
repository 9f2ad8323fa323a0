"""The CRDs: structural, in step with the models, and committed as generated."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from controllers.api import (
    InvalidResource,
    validate_elastic_worker,
    validate_elastic_worker_autoscaler,
)
from controllers.api.crd import (
    REGENERATE,
    crd_objects,
    elastic_worker_autoscaler_crd,
    elastic_worker_crd,
    main,
    render_crds,
    stale_files,
)

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "kind-config" / "crds"

_JSON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}
_FORBIDDEN = ("$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "title", "const", "definitions")


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


# --- a checker for Kubernetes' structural-schema rules (independent of the generator) ---------


def structural_problems(node: Any, path: str = "", top: bool = True) -> list[str]:
    """What makes `node` non-structural, as `path: problem` strings; [] when it is fine."""
    where = path or "(root)"
    if not isinstance(node, dict):
        return [f"{where}: not a schema object"]
    problems = [f"{where}: has {key}" for key in _FORBIDDEN if key in node]
    kind = node.get("type")
    if kind is None and not node.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{where}: has no type")
    if kind is not None and kind not in _JSON_TYPES:
        problems.append(f"{where}: type {kind!r} is not allowed (null or a list of types)")
    if "nullable" in node and not isinstance(node["nullable"], bool):
        problems.append(f"{where}: nullable must be a boolean")
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if key in node and not isinstance(node[key], bool):
            problems.append(f"{where}: {key} must be a boolean in OpenAPI v3.0")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{where}: both properties and additionalProperties")
    if isinstance(node.get("additionalProperties"), bool):
        problems.append(f"{where}: additionalProperties must be a schema")
    if kind == "array" and not isinstance(node.get("items"), dict):
        problems.append(f"{where}: array without a single items schema")
    if node.get("x-kubernetes-list-type") == "map":
        keys = node.get("x-kubernetes-list-map-keys") or []
        required = set(node.get("items", {}).get("required", []))
        if not keys or not set(keys) <= required:
            problems.append(f"{where}: list-map keys {keys} must be required in items")
    if "default" in node:
        problems += [f"{where}: default {e}" for e in value_errors(node, node["default"])]
    for name in node.get("required", []):
        if name not in node.get("properties", {}):
            problems.append(f"{where}: required {name!r} is not a property")
    for name, sub in node.get("properties", {}).items():
        sub_path = f"{path}.{name}" if path else name
        if top and name == "metadata":
            if sub != {"type": "object"}:
                problems.append(f"{sub_path}: top-level metadata must be only type: object")
            continue
        problems += structural_problems(sub, sub_path, top=False)
    if isinstance(node.get("items"), dict):
        problems += structural_problems(node["items"], f"{path}[]", top=False)
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{path}[*]", top=False)
    return problems


def value_errors(node: dict[str, Any], value: Any) -> list[str]:
    """A small OpenAPI validator: the keywords the generated CRDs use, not CEL."""
    kind = node.get("type")
    expected = _JSON_TYPES.get(kind or "object", object)
    if not isinstance(value, expected) or (kind in ("integer", "number") and value is True):
        return [f"{value!r} is not of type {kind}"]
    if value is False and kind in ("integer", "number"):
        return [f"{value!r} is not of type {kind}"]
    errors = []
    if "enum" in node and value not in node["enum"]:
        errors.append(f"{value!r} not in {node['enum']}")
    if "minimum" in node:
        low = node["minimum"]
        if value < low or (node.get("exclusiveMinimum") and value == low):
            errors.append(f"{value!r} below minimum {low}")
    if "maximum" in node:
        high = node["maximum"]
        if value > high or (node.get("exclusiveMaximum") and value == high):
            errors.append(f"{value!r} above maximum {high}")
    if "minLength" in node and len(value) < node["minLength"]:
        errors.append(f"{value!r} shorter than {node['minLength']}")
    if "maxLength" in node and len(value) > node["maxLength"]:
        errors.append(f"{value!r} longer than {node['maxLength']}")
    if "pattern" in node and not re.search(node["pattern"], value):
        errors.append(f"{value!r} does not match {node['pattern']}")
    if "minProperties" in node and len(value) < node["minProperties"]:
        errors.append(f"{value!r} has fewer than {node['minProperties']} keys")
    if kind == "object" or (kind is None and isinstance(value, dict)):
        for name in node.get("required", []):
            if name not in value:
                errors.append(f"{name!r} is required")
        for name, sub_value in value.items():
            sub = node.get("properties", {}).get(name) or node.get("additionalProperties")
            if isinstance(sub, dict):
                errors += [f"{name}: {e}" for e in value_errors(sub, sub_value)]
    if kind == "array":
        for i, item in enumerate(value):
            errors += [f"[{i}]: {e}" for e in value_errors(node["items"], item)]
    return errors


@pytest.mark.parametrize("name", sorted(crd_objects()))
def test_the_schema_is_structural(name: str) -> None:
    schema = _schema(crd_objects()[name])
    assert structural_problems(schema) == []


def test_the_checker_catches_what_kubernetes_rejects() -> None:
    bad = {
        "type": "object",
        "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
            "spec": {
                "type": "object",
                "properties": {
                    "a": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                    "b": {"$ref": "#/$defs/B"},
                    "c": {"type": "null"},
                    "d": {"type": "object", "additionalProperties": False, "properties": {}},
                    "e": {"type": "integer", "minimum": 1, "default": 0},
                    "f": {"type": "number", "exclusiveMinimum": 0},
                },
            },
        },
    }
    problems = "\n".join(structural_problems(bad))
    for expected in (
        "metadata: top-level",
        "spec.a: has anyOf",
        "spec.a: has no type",
        "spec.b: has $ref",
        "spec.c: type 'null'",
        "spec.d: both properties",
        "spec.e: default",
        "spec.f: exclusiveMinimum",
    ):
        assert expected in problems


# --- the committed files ---------------------------------------------------------------------


def test_committed_crds_equal_the_generated_ones() -> None:
    for name, text in render_crds().items():
        path = COMMITTED / name
        assert path.is_file(), f"{path} is missing; run: {REGENERATE}"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is out of date with controllers/api/models.py; run: {REGENERATE}"
        )


def test_check_flag_reports_stale_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert REGENERATE in capsys.readouterr().err

    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--check", "--out", str(tmp_path)]) == 0
    assert stale_files(tmp_path) == []

    edited = tmp_path / "elasticworkers.yaml"
    edited.write_text(edited.read_text().replace("minimum: 1", "minimum: 2"), encoding="utf-8")
    assert stale_files(tmp_path) == ["elasticworkers.yaml"]
    assert main(["--check", "--out", str(tmp_path)]) == 1
    assert "elasticworkers.yaml" in capsys.readouterr().err


def test_generated_yaml_parses_back_to_the_objects() -> None:
    for name, text in render_crds().items():
        assert yaml.safe_load(text) == crd_objects()[name]


# --- the CRD's shape -------------------------------------------------------------------------


def test_elastic_worker_crd_names_scale_and_columns() -> None:
    crd = elastic_worker_crd()
    assert crd["metadata"]["name"] == "elasticworkers.elasticcluster.sarweshsuman.com"
    spec = crd["spec"]
    assert spec["group"] == "elasticcluster.sarweshsuman.com"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "ElasticWorker"
    assert spec["names"]["plural"] == "elasticworkers"
    assert spec["names"]["shortNames"] == ["ew"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Min", "Max", "Desired", "Current", "Ready", "Age"]


def test_autoscaler_crd_names_and_columns() -> None:
    crd = elastic_worker_autoscaler_crd()
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "elasticworkerautoscalers.elasticcluster.sarweshsuman.com"
    assert spec["names"]["kind"] == "ElasticWorkerAutoscaler"
    assert spec["names"]["shortNames"] == ["ewa"]
    (version,) = spec["versions"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Target", "Load", "Desired", "Current", "Age"]


def test_printer_columns_point_at_fields_that_exist() -> None:
    for crd in crd_objects().values():
        schema = _schema(crd)
        for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]:
            path = column["jsonPath"]
            if path.startswith(".metadata"):
                continue
            node = schema
            for part in re.sub(r"\[.*\]", "", path).strip(".").split("."):
                node = node.get("items", node)["properties"][part]
            assert node["type"] == column["type"] or column["type"] == "string", path


def test_scale_paths_point_at_integer_and_string_fields() -> None:
    schema = _schema(elastic_worker_crd())
    assert schema["properties"]["spec"]["properties"]["replicas"]["type"] == "integer"
    assert schema["properties"]["status"]["properties"]["replicas"]["type"] == "integer"
    assert schema["properties"]["status"]["properties"]["selector"]["type"] == "string"


def test_cel_rules_and_bounds() -> None:
    spec = _schema(elastic_worker_crd())["properties"]["spec"]
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert any("self.minReplicas <= self.maxReplicas" in r for r in rules)
    policy_rules = [
        r["rule"] for r in spec["properties"]["scaleInPolicy"]["x-kubernetes-validations"]
    ]
    assert any("self.name != 'selector'" in r and "has(self.selector)" in r for r in policy_rules)
    props = spec["properties"]
    assert props["minReplicas"]["minimum"] == 0
    assert props["maxReplicas"]["minimum"] == 1
    assert props["replicas"]["minimum"] == 0
    assert "minimum" not in props["scale"]

    ewa = _schema(elastic_worker_autoscaler_crd())["properties"]["spec"]["properties"]
    assert (ewa["targetValue"]["minimum"], ewa["targetValue"]["maximum"]) == (1, 100)
    assert ewa["scaleInSpec"]["properties"]["scaleInBackOff"]["minimum"] == 0
    tolerance = ewa["behavior"]["properties"]["tolerance"]
    assert (tolerance["minimum"], tolerance["maximum"], tolerance["exclusiveMaximum"]) == (
        0,
        1,
        True,
    )


def test_cel_rules_name_only_fields_that_exist() -> None:
    spec = _schema(elastic_worker_crd())["properties"]["spec"]
    for node in (spec, spec["properties"]["scaleInPolicy"]):
        for rule in node["x-kubernetes-validations"]:
            for name in re.findall(r"self\.(\w+)", rule["rule"]):
                assert name in node["properties"], (name, rule["rule"])


def test_pod_template_spec_is_free_form_and_status_has_no_defaults() -> None:
    spec = _schema(elastic_worker_crd())["properties"]["spec"]
    template_spec = spec["properties"]["template"]["properties"]["spec"]
    assert template_spec == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    for crd in crd_objects().values():
        assert "default:" not in yaml.safe_dump(_schema(crd)["properties"]["status"])


# --- the CRD agrees with the models ----------------------------------------------------------


def apply_defaults(node: dict[str, Any], value: Any) -> Any:
    """What the API server's structural defaulting does to `value`."""
    if isinstance(value, dict) and "properties" in node:
        value = dict(value)
        for name, sub in node["properties"].items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        value = [apply_defaults(node["items"], item) for item in value]
    return value


def pruned_keys(node: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """The keys the API server would prune from `value` under the schema `node`."""
    if node.get("x-kubernetes-preserve-unknown-fields") or node == {"type": "object"}:
        return []
    dropped = []
    if isinstance(value, dict):
        for key, sub_value in value.items():
            sub = node.get("properties", {}).get(key) or node.get("additionalProperties")
            if sub is None:
                dropped.append(f"{path}.{key}")
            else:
                dropped += pruned_keys(sub, sub_value, f"{path}.{key}")
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            dropped += pruned_keys(node["items"], item, f"{path}[{i}]")
    return dropped


MINIMAL_EW = {
    "apiVersion": "elasticcluster.sarweshsuman.com/v1",
    "kind": "ElasticWorker",
    "metadata": {"name": "w"},
    "spec": {"maxReplicas": 4},
}
MINIMAL_EWA = {
    "apiVersion": "elasticcluster.sarweshsuman.com/v1",
    "kind": "ElasticWorkerAutoscaler",
    "metadata": {"name": "a"},
    "spec": {
        "scaleTargetRef": {"name": "w"},
        "targetValue": 60,
        "scaleInSpec": {"hookTokenSecretRef": {"name": "s"}},
    },
}


@pytest.mark.parametrize(
    ("manifest", "crd", "validate"),
    [
        (MINIMAL_EW, elastic_worker_crd(), validate_elastic_worker),
        (MINIMAL_EWA, elastic_worker_autoscaler_crd(), validate_elastic_worker_autoscaler),
    ],
    ids=["ElasticWorker", "ElasticWorkerAutoscaler"],
)
def test_server_defaults_equal_model_defaults(manifest: Any, crd: Any, validate: Any) -> None:
    schema = _schema(crd)
    defaulted = apply_defaults(schema, manifest)
    assert value_errors(schema, defaulted) == []
    assert validate(defaulted) == validate(manifest)
    # And the server fills in every default the model has.
    model_dump = validate(manifest).model_dump(by_alias=True, exclude_none=True)
    server_spec = defaulted["spec"]
    for key, value in model_dump["spec"].items():
        if value not in ({}, []):
            assert key in server_spec, key


def test_nothing_the_models_write_is_pruned(prototype_ew: Any, prototype_ewa: Any) -> None:
    ew = copy.deepcopy(prototype_ew)
    ew["spec"].update({"replicas": 3, "scale": 1})
    ew["status"] = {
        "objectStatus": "Valid",
        "actualReplicas": 3,
        "replicas": 3,
        "desiredReplicas": 3,
        "readyReplicas": 3,
        "selector": "app=airflow-worker",
        "observedGeneration": 1,
        "nextPodIndex": 4,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "AllReady",
                "message": "",
                "lastTransitionTime": "2024-05-01T12:00:00Z",
                "observedGeneration": 1,
            }
        ],
    }
    ewa = copy.deepcopy(prototype_ewa)
    ewa["spec"]["scaleInSpec"]["hookTokenSecretRef"] = {"name": "s", "key": "k"}
    ewa["status"] = {
        "observedGeneration": 1,
        "conditions": [],
        "currentLoad": 10,
        "loadTimestamp": "2024-05-01T12:00:00Z",
        "currentReplicas": 2,
        "desiredReplicas": 2,
        "lowLoadSince": "2024-05-01T12:00:00Z",
        "lastScaleTime": "2024-05-01T12:00:00Z",
        "draining": [
            {
                "pod": "p",
                "step": "marked",
                "since": "2024-05-01T12:00:00Z",
                "active": 0,
                "reserved": 0,
                "reportedAt": "2024-05-01T12:00:00Z",
            }
        ],
    }
    for manifest, crd, validate in (
        (ew, elastic_worker_crd(), validate_elastic_worker),
        (ewa, elastic_worker_autoscaler_crd(), validate_elastic_worker_autoscaler),
    ):
        dumped = validate(manifest).model_dump(by_alias=True, exclude_none=True)
        assert pruned_keys(_schema(crd), dumped) == []
        assert value_errors(_schema(crd), dumped) == []


# Fields whose only rule is a range: the CRD's bounds must accept exactly what the model accepts.
_RANGED = [
    ("ew", ("spec", "maxReplicas")),
    ("ew", ("spec", "replicas")),
    ("ew", ("spec", "scale")),
    ("ewa", ("spec", "targetValue")),
    ("ewa", ("spec", "metricSpec", "maxAgeSeconds")),
    ("ewa", ("spec", "scaleInSpec", "scaleInBackOff")),
    ("ewa", ("spec", "scaleInSpec", "hookTimeoutSeconds")),
    ("ewa", ("spec", "behavior", "tolerance")),
    ("ewa", ("spec", "behavior", "scaleDownStabilizationSeconds")),
]


@given(
    which=st.sampled_from(_RANGED),
    value=st.one_of(
        st.integers(min_value=-5, max_value=120),
        st.sampled_from([0.0, 0.5, 0.999, 1.0, -0.01, 10.5]),
    ),
)
def test_crd_bounds_agree_with_the_model(which: Any, value: Any) -> None:
    kind, path = which
    manifest = copy.deepcopy(MINIMAL_EW if kind == "ew" else MINIMAL_EWA)
    if kind == "ew":
        manifest["spec"]["minReplicas"] = 0  # keep min <= max out of the way
    node = manifest
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    validate = validate_elastic_worker if kind == "ew" else validate_elastic_worker_autoscaler
    crd = elastic_worker_crd() if kind == "ew" else elastic_worker_autoscaler_crd()
    try:
        validate(manifest)
        model_ok = True
    except InvalidResource:
        model_ok = False
    schema_ok = value_errors(_schema(crd), manifest) == []
    assert model_ok == schema_ok, (path, value)
