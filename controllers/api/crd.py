"""The two CustomResourceDefinitions, generated from the models.

    python -m controllers.api.crd --out kind-config/crds     # write the YAML files
    python -m controllers.api.crd --check                    # exit 1 if they are stale

The models are the single source of truth; the committed YAML is checked against them by the
tests, so a model change without a regeneration fails CI with the command to run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from controllers.api.models import (
    API_VERSION,
    AUTOSCALER_KIND,
    AUTOSCALER_PLURAL,
    CONDITION_READY,
    ELASTIC_WORKER_KIND,
    ELASTIC_WORKER_PLURAL,
    GROUP,
    VERSION,
    ElasticWorker,
    ElasticWorkerAutoscaler,
    ElasticWorkerAutoscalerSpec,
    ElasticWorkerAutoscalerStatus,
    ElasticWorkerSpec,
    ElasticWorkerStatus,
)
from controllers.api.structural import strip_defaults, structural_schema

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "kind-config" / "crds"
REGENERATE = "python -m controllers.api.crd --out kind-config/crds"

HEADER = (
    f"# Generated from controllers/api/models.py by `{REGENERATE}`.\n"
    "# Do not edit: change the models and regenerate.\n"
)

# Only rules on integers, enums and has()/size() of maps and lists: the API server's CEL cost
# estimate stays tiny without maxLength/maxItems bounds. Whether `selector` matches the template
# labels would need a walk over maps of unbounded strings, so only the Python validation checks it.
_ELASTIC_WORKER_SPEC_RULES = [
    {
        "rule": "!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
        "message": "minReplicas must be less than or equal to maxReplicas",
    },
]
_SCALE_IN_POLICY_RULES = [
    {
        "rule": "!has(self.name) || self.name != 'selector' || (has(self.selector) && ("
        "(has(self.selector.matchLabels) && size(self.selector.matchLabels) > 0) || "
        "(has(self.selector.matchExpressions) && size(self.selector.matchExpressions) > 0)))",
        "message": "a non-empty selector is required when name is 'selector'",
    },
]

_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _column(name: str, kind: str, path: str) -> dict[str, str]:
    return {"name": name, "type": kind, "jsonPath": path}


def _object_schema(
    model: type[BaseModel],
    spec: type[BaseModel],
    status: type[BaseModel],
) -> dict[str, Any]:
    spec_schema = structural_schema(spec)
    spec_schema.pop("description", None)
    status_schema = strip_defaults(structural_schema(status))
    status_schema.pop("description", None)
    return {
        "type": "object",
        "description": (model.__doc__ or "").strip(),
        "properties": {
            # The API server validates these three itself; repeating their shapes would only
            # risk disagreeing with it.
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
        "required": ["spec"],
    }


def elastic_worker_crd() -> dict[str, Any]:
    schema = _object_schema(ElasticWorker, ElasticWorkerSpec, ElasticWorkerStatus)
    spec = schema["properties"]["spec"]
    spec["x-kubernetes-validations"] = _ELASTIC_WORKER_SPEC_RULES
    spec["properties"]["scaleInPolicy"]["x-kubernetes-validations"] = _SCALE_IN_POLICY_RULES
    return _crd(
        kind=ELASTIC_WORKER_KIND,
        plural=ELASTIC_WORKER_PLURAL,
        short_names=["ew"],
        schema=schema,
        subresources={
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector",
            },
        },
        columns=[
            _column("Min", "integer", ".spec.minReplicas"),
            _column("Max", "integer", ".spec.maxReplicas"),
            _column("Desired", "integer", ".status.desiredReplicas"),
            _column("Current", "integer", ".status.replicas"),
            _column(
                "Ready", "string", f'.status.conditions[?(@.type=="{CONDITION_READY}")].status'
            ),
            _AGE,
        ],
    )


def elastic_worker_autoscaler_crd() -> dict[str, Any]:
    schema = _object_schema(
        ElasticWorkerAutoscaler, ElasticWorkerAutoscalerSpec, ElasticWorkerAutoscalerStatus
    )
    return _crd(
        kind=AUTOSCALER_KIND,
        plural=AUTOSCALER_PLURAL,
        short_names=["ewa"],
        schema=schema,
        subresources={"status": {}},
        columns=[
            _column("Target", "integer", ".spec.targetValue"),
            _column("Load", "integer", ".status.currentLoad"),
            _column("Desired", "integer", ".status.desiredReplicas"),
            _column("Current", "integer", ".status.currentReplicas"),
            _AGE,
        ],
    )


def _crd(
    *,
    kind: str,
    plural: str,
    short_names: list[str],
    schema: dict[str, Any],
    subresources: dict[str, Any],
    columns: list[dict[str, str]],
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": subresources,
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def crd_objects() -> dict[str, dict[str, Any]]:
    """File name -> CRD object."""
    return {
        f"{ELASTIC_WORKER_PLURAL}.yaml": elastic_worker_crd(),
        f"{AUTOSCALER_PLURAL}.yaml": elastic_worker_autoscaler_crd(),
    }


def render_crds() -> dict[str, str]:
    """File name -> the exact YAML text the files must hold."""
    return {
        name: HEADER + yaml.safe_dump(obj, sort_keys=False, width=100, allow_unicode=True)
        for name, obj in crd_objects().items()
    }


def stale_files(out: Path) -> list[str]:
    """Names of the CRD files under `out` that are missing or differ from the models."""
    stale = []
    for name, text in render_crds().items():
        path = out / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def write_crds(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_crds().items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m controllers.api.crd",
        description=f"Generate the {API_VERSION} CRDs from controllers.api.models.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="directory of the YAML")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the files are stale"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.out)
        if stale:
            print(
                f"CRD files out of date with controllers/api/models.py in {args.out}: "
                f"{', '.join(stale)}; run: {REGENERATE}",
                file=sys.stderr,
            )
            return 1
        print(f"CRD files in {args.out} are up to date")
        return 0
    for path in write_crds(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
