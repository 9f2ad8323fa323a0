"""Every Kubernetes manifest under kind-config/ passes a server-side dry-run (no kubectl: the
Python client's server-side apply with dry_run=All), and the operator's RBAC grants no more than
it says."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, dynamic

from harness.e2e.manifests import create_namespaces, dry_run

from .conftest import RBAC, REPO, load_documents

pytestmark = pytest.mark.controlplane

KIND_CONFIG = REPO / "kind-config"
# Files that are not objects for the API server: kustomize's and kind's own configuration.
NOT_API_OBJECTS = {"kustomize.config.k8s.io", "kind.x-k8s.io"}
# A value a kustomization fills in at build time (replacements), e.g. the APIService caBundle.
PLACEHOLDER = re.compile(r"^[A-Z0-9_]+_PLACEHOLDER$")
FILLED = base64.b64encode(b"filled by kustomize").decode()


def fill_placeholders(node: Any) -> Any:
    """What `kustomize build` would leave: placeholders replaced by a value of the right form
    (base64 suits both the string and the bytes fields they stand for)."""
    if isinstance(node, dict):
        return {k: fill_placeholders(v) for k, v in node.items()}
    if isinstance(node, list):
        return [fill_placeholders(v) for v in node]
    if isinstance(node, str) and PLACEHOLDER.match(node):
        return FILLED
    return node


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(KIND_CONFIG.rglob("*.y*ml")):
        for doc in load_documents(path):
            group = str(doc.get("apiVersion", "")).split("/")[0]
            if group in NOT_API_OBJECTS or "kind" not in doc:
                continue
            found.append((path, fill_placeholders(doc)))
    return found


def test_kind_config_has_the_operator_manifests() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in manifests()}
    for wanted in [
        ("CustomResourceDefinition", "elasticworkers.elasticcluster.sarweshsuman.com"),
        ("CustomResourceDefinition", "elasticworkerautoscalers.elasticcluster.sarweshsuman.com"),
        ("ServiceAccount", "elastic-airflow-operator"),
        ("ClusterRole", "elastic-airflow-operator"),
        ("ClusterRoleBinding", "elastic-airflow-operator"),
        ("Deployment", "elastic-airflow-operator"),
    ]:
        assert wanted in kinds


def test_all_manifests_pass_a_server_side_dry_run(
    admin_client: client.ApiClient, crds: list[str]
) -> None:
    api = dynamic.DynamicClient(admin_client)
    docs = manifests()
    assert docs, f"no manifests under {KIND_CONFIG}"
    create_namespaces(api, [doc for _, doc in docs])
    # CRDs first, so that nothing that uses them is refused for an unknown kind.
    docs.sort(key=lambda item: item[1]["kind"] != "CustomResourceDefinition")
    failures = [
        f"{path.relative_to(REPO)}: {failure}"
        for path, doc in docs
        for failure in dry_run(api, [doc], "dry-run-test")
    ]
    assert not failures, "\n".join(failures)


def test_operator_role_is_least_privilege() -> None:
    [role] = [d for d in load_documents(RBAC) if d["kind"] == "ClusterRole"]
    verbs = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert all("*" not in v for v in verbs.values())
    assert not any("*" in resource for _, resource in verbs)
    assert verbs[("", "pods")] == {"get", "list", "watch", "create", "delete", "patch"}
    assert verbs[("", "secrets")] == {"get"}  # by name only: no list, no watch
    assert "delete" not in verbs[("elasticcluster.sarweshsuman.com", "elasticworkers")]
    binding = [d for d in load_documents(RBAC) if d["kind"] == "ClusterRoleBinding"]
    assert binding[0]["roleRef"]["name"] == "elastic-airflow-operator"
