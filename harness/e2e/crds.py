"""Install the project's CRDs on an API server and wait until their objects can be served."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controllers.api import AUTOSCALER_PLURAL, ELASTIC_WORKER_PLURAL, GROUP, VERSION

CRD_DIR = Path(__file__).resolve().parents[2] / "kind-config" / "crds"


class CRDError(RuntimeError):
    """The CRDs are missing from the tree or the API server did not establish them in time."""


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def install_crds(
    api_client: client.ApiClient, crd_dir: Path = CRD_DIR, timeout: float = 30.0
) -> list[str]:
    """Create (or keep) every CRD under `crd_dir`; return their names once served."""
    api = client.ApiextensionsV1Api(api_client)
    names = []
    for path in sorted(crd_dir.glob("*.yaml")):
        for doc in load_documents(path):
            if doc.get("kind") != "CustomResourceDefinition":
                continue
            names.append(doc["metadata"]["name"])
            try:
                api.create_custom_resource_definition(doc)
            except ApiException as error:
                if error.status != 409:
                    raise
    if len(names) != 2:
        raise CRDError(f"expected the two CRDs under {crd_dir}, found {names}")
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            crd = api.read_custom_resource_definition(name)
            conditions = {c.type: c.status for c in (crd.status.conditions or [])}
            if conditions.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise CRDError(f"CRD {name} not Established: {conditions}")
            time.sleep(0.1)
    # The API server serves a new CRD's storage a moment after Established.
    custom = client.CustomObjectsApi(api_client)
    for plural in (ELASTIC_WORKER_PLURAL, AUTOSCALER_PLURAL):
        while True:
            try:
                custom.list_cluster_custom_object(GROUP, VERSION, plural)
                break
            except ApiException as error:
                if error.status not in (404, 429, 503) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    return names
