"""Pod templates of rendered manifests, and pods made from them."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "ElasticWorker")


def workloads(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(object, its pod template) for every object that makes pods."""
    for doc in docs:
        if doc["kind"] in WORKLOAD_KINDS:
            yield doc, doc["spec"]["template"]


def pod_from(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod the workload's controller would create (claims of a StatefulSet as volumes)."""
    template = copy.deepcopy(doc["spec"]["template"])
    spec = template["spec"]
    name = doc["metadata"]["name"]
    for claim in doc["spec"].get("volumeClaimTemplates") or []:
        claim_name = claim["metadata"]["name"]
        spec.setdefault("volumes", []).append(
            {"name": claim_name, "persistentVolumeClaim": {"claimName": f"{claim_name}-{name}-0"}}
        )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-dry-run",
            "namespace": doc["metadata"]["namespace"],
            "labels": dict((template.get("metadata") or {}).get("labels") or {}),
        },
        "spec": spec,
    }


def containers(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    spec = template["spec"]
    for kind in ("initContainers", "containers"):
        for container in spec.get(kind) or []:
            yield kind, container
