"""Manifests against a real API server: namespaces made first, then a server-side dry-run."""

from __future__ import annotations

from typing import Any

from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException

Doc = dict[str, Any]


def label(doc: Doc) -> str:
    meta = doc["metadata"]
    return f"{doc['kind']}/{meta.get('namespace', '-')}/{meta['name']}"


def create_namespaces(api: dynamic.DynamicClient, docs: list[Doc]) -> None:
    """A dry-run in a namespace needs the namespace: made for real, with its labels (a Pod
    Security level on it is then enforced on the pods dry-run there)."""
    core = client.CoreV1Api(api.client)
    for doc in docs:
        if doc["kind"] == "Namespace":
            try:
                core.create_namespace(doc)
            except ApiException as error:
                if error.status != 409:
                    raise


def dry_run(api: dynamic.DynamicClient, docs: list[Doc], manager: str = "dry-run") -> list[str]:
    """Server-side apply with `dry_run=All`; one line per refused document."""
    failures = []
    for doc in docs:
        resource = api.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        meta = doc["metadata"]
        try:
            resource.server_side_apply(
                body=doc,
                name=meta["name"],
                namespace=meta.get("namespace") if resource.namespaced else None,
                field_manager=manager,
                dry_run="All",
                force_conflicts=True,
            )
        except ApiException as error:
            failures.append(f"{label(doc)}: {error.status} {error.body}")
    return failures
