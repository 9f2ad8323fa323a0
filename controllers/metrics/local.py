"""The metrics path on a cluster-less machine (`--cluster local`): a bare kube-apiserver, with the
collector and the adapter as local processes on the loopback.

The aggregation layer works there as on kind, so the operator reads `CustomMetricsApi` the same
way in both. Three things make it work:

1. kube-apiserver needs the front-proxy flags (`front_proxy_flags`): the aggregator's client
   certificate, and the requestheader CA and header names it publishes in
   `kube-system/extension-apiserver-authentication` for the adapter to trust;
2. the APIService points at a Service of type `ExternalName` with `externalName: 127.0.0.1`
   and the adapter's loopback port (`loopback_objects`): the aggregator dials
   `127.0.0.1:<port>` and still verifies the adapter's certificate against `caBundle` for the
   name `custom-metrics-adapter.elastic-airflow.svc` (`certs.issue`);
3. the adapter runs with `--authentication delegated` and a kubeconfig whose user is the
   ServiceAccount `elastic-airflow/custom-metrics-adapter` (the RBAC objects of
   `kind-config/metrics/adapter-rbac.yaml`, applied as they are).

`tests/metrics/test_metrics_aggregation.py` does exactly this against `LocalControlPlane`.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml

from controllers.metrics import certs

MANIFESTS = Path(__file__).resolve().parents[2] / "kind-config" / "metrics"
FRONT_PROXY_USER = "front-proxy-client"
ADAPTER_NAMESPACE = certs.DEFAULT_NAMESPACE
ADAPTER_SERVICE = certs.DEFAULT_SERVICE
ADAPTER_USER = f"system:serviceaccount:{ADAPTER_NAMESPACE}:{ADAPTER_SERVICE}"


def front_proxy_flags(directory: Path, days: int = 2) -> list[str]:
    """kube-apiserver flags enabling the aggregation layer, with fresh certificates written to
    `directory` (front-proxy CA, and the aggregator's client certificate signed by it)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = certs.issue_client(FRONT_PROXY_USER, days).write(directory / "front-proxy")
    return [
        f"--requestheader-client-ca-file={paths['ca.crt']}",
        f"--requestheader-allowed-names={FRONT_PROXY_USER}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={paths['tls.crt']}",
        f"--proxy-client-key-file={paths['tls.key']}",
    ]


def serving_certificate(directory: Path, days: int = 2) -> dict[str, Path]:
    """The adapter's serving pair and its CA (`ca.crt`, `tls.crt`, `tls.key`) in `directory`."""
    hosts = [*certs.service_names(ADAPTER_SERVICE, ADAPTER_NAMESPACE), "127.0.0.1", "localhost"]
    return certs.issue(hosts, days, common_name=hosts[2]).write(directory)


def manifest(name: str) -> list[dict[str, Any]]:
    """The documents of `kind-config/metrics/<name>`."""
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def loopback_objects(port: int, ca_pem: bytes, host: str = "127.0.0.1") -> list[dict[str, Any]]:
    """Namespace, adapter RBAC, an ExternalName Service to `host`, and the APIService (port and
    caBundle filled), in the order to create them."""
    (apiservice,) = manifest("apiservice.yaml")
    apiservice = copy.deepcopy(apiservice)
    apiservice["spec"]["service"]["port"] = port
    apiservice["spec"]["caBundle"] = base64.b64encode(ca_pem).decode()
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": ADAPTER_SERVICE, "namespace": ADAPTER_NAMESPACE},
        "spec": {"type": "ExternalName", "externalName": host},
    }
    return [*manifest("namespace.yaml"), *manifest("adapter-rbac.yaml"), service, apiservice]


def adapter_args(
    redis_url: str, port: int, serving: dict[str, Path], kubeconfig: Path
) -> list[str]:
    """`python -m controllers.metrics.adapter` arguments for the loopback adapter."""
    return [
        "--redis-url", redis_url,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--tls-cert", str(serving["tls.crt"]),
        "--tls-key", str(serving["tls.key"]),
        "--kubeconfig", str(kubeconfig),
        "--authentication", "delegated",
        "--pod-source", "kube",
    ]  # fmt: skip


def apply(api_client: Any, objects: list[dict[str, Any]]) -> None:
    """Create each object (an existing one is left as it is, an APIService is replaced)."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    registration = client.ApiregistrationV1Api(api_client)
    for doc in objects:
        kind, meta = doc["kind"], doc["metadata"]
        ns = meta.get("namespace")
        create = {
            "Namespace": lambda d=doc: core.create_namespace(d),
            "ServiceAccount": lambda d=doc, n=ns: core.create_namespaced_service_account(n, d),
            "Service": lambda d=doc, n=ns: core.create_namespaced_service(n, d),
            "ClusterRole": lambda d=doc: rbac.create_cluster_role(d),
            "ClusterRoleBinding": lambda d=doc: rbac.create_cluster_role_binding(d),
            "Role": lambda d=doc, n=ns: rbac.create_namespaced_role(n, d),
            "RoleBinding": lambda d=doc, n=ns: rbac.create_namespaced_role_binding(n, d),
            "APIService": lambda d=doc: registration.create_api_service(d),
        }[kind]
        try:
            create()
        except ApiException as error:
            if error.status != 409:
                raise
            if kind == "APIService":
                current = registration.read_api_service(meta["name"])
                version = current.metadata.resource_version
                doc = {**doc, "metadata": {**meta, "resourceVersion": version}}
                registration.replace_api_service(meta["name"], doc)
