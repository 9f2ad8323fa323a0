"""The adapter behind a real kube-apiserver's aggregation layer, TLS verified, auth delegated.

A local etcd + kube-apiserver with front-proxy (requestheader) flags; the adapter runs on the
loopback with a serving certificate for `custom-metrics-adapter.elastic-airflow.svc` and
`--authentication delegated`, as the ServiceAccount user of `kind-config/metrics/adapter-rbac.yaml`
(applied as is). An `ExternalName` Service points the APIService at 127.0.0.1 (the aggregator then
dials `externalName:port` and still checks the certificate against `caBundle`). This is the
`local` cluster mode's route (`controllers.metrics.local`): the operator reads
`CustomMetricsApi` through the API server.
"""

from __future__ import annotations

import base64
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis as redis_lib
import yaml
from kubernetes import client as k8s

from controllers.core.types import Reading
from controllers.metrics import local, store, wire
from controllers.metrics.membership import ELASTICWORKER_LABEL, KubeLabelMembership
from controllers.metrics.source import CustomMetricsApi, _get_json
from harness.e2e.controlplane import LocalControlPlane
from harness.e2e.kubebins import BinariesUnavailable, ensure_binaries
from harness.services import RedisServer, free_port

from .helpers import start_module, wait_for

pytestmark = pytest.mark.controlplane

NS = "airflow"
PATH = "/apis/custom.metrics.k8s.io/v1beta2"


@dataclass
class Aggregated:
    plane: LocalControlPlane
    adapter_url: str
    serving_ca: Path

    def get(self, path: str) -> tuple[int, str]:
        return self.plane.get(path)

    def api_client(self, kubeconfig: Path | None = None) -> k8s.ApiClient:
        return self.plane.api_client(kubeconfig)


@pytest.fixture(scope="module")
def aggregated(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Aggregated]:
    try:
        binaries = ensure_binaries()
    except BinariesUnavailable as error:
        pytest.fail(f"kube-apiserver/etcd unavailable: {error}", pytrace=False)
    work = Path(tmp_path_factory.mktemp("aggregation"))
    flags = local.front_proxy_flags(work)
    with LocalControlPlane(binaries_dir=binaries, extra_apiserver_flags=flags) as plane:
        port = free_port()
        serving = local.serving_certificate(work / "serving")
        objects = local.loopback_objects(port, serving["ca.crt"].read_bytes())
        (apiservice,) = [o for o in objects if o["kind"] == "APIService"]
        assert "insecureSkipTLSVerify" not in apiservice["spec"]
        local.apply(plane.api_client(), objects)
        local.apply(
            plane.api_client(),
            [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}],
        )
        kubeconfig = plane.kubeconfig_for(local.ADAPTER_USER)
        adapter = start_module(
            "adapter",
            "controllers.metrics.adapter",
            local.adapter_args(redis_server.url, port, serving, kubeconfig),
            work,
        )
        try:
            wait_for(
                lambda: plane.get(PATH)[0] == 200,
                timeout=60,
                interval=0.5,
                what="custom.metrics.k8s.io/v1beta2 through the aggregator",
                process=adapter,
            )
            yield Aggregated(plane, f"https://127.0.0.1:{port}", serving["ca.crt"])
        finally:
            adapter.stop(10)


def test_discovery_through_the_aggregator(aggregated: Aggregated) -> None:
    status, body = aggregated.get(PATH)
    assert status == 200, body
    names = {r["name"] for r in yaml.safe_load(body)["resources"]}
    assert {"pods/load", f"{wire.EW_RESOURCE}/total_cluster_load"} <= names
    apiservice = k8s.ApiregistrationV1Api(aggregated.api_client()).read_api_service(
        "v1beta2.custom.metrics.k8s.io"
    )
    conditions = {c.type: c.status for c in apiservice.status.conditions or ()}
    assert conditions.get("Available") == "True", apiservice.status


def test_readings_through_the_aggregator(
    aggregated: Aggregated, redis_client: redis_lib.Redis
) -> None:
    sampled = round(time.time() - 3, 3)
    ttl = 60_000
    put = lambda key, r: redis_client.set(key, store.encode(r), px=ttl)  # noqa: E731
    put(store.cluster_key(NS, "workers"), Reading(50.0, sampled, workers=2))
    put(store.cluster_key(NS, "workers", "alive_workers"), Reading(2.0, sampled, workers=2))
    put(store.pod_key(NS, "workers-a"), Reading(100.0, sampled))
    put(store.pod_key(NS, "workers-b"), Reading(0.0, sampled))

    core = k8s.CoreV1Api(aggregated.api_client())
    for pod in ("workers-a", "workers-b", "other-1"):
        label = "workers" if pod.startswith("workers") else "other"
        core.create_namespaced_pod(
            NS,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod, "labels": {ELASTICWORKER_LABEL: label}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        )

    source = CustomMetricsApi(aggregated.api_client())
    assert source.cluster_load(NS, "workers") == Reading(50.0, sampled, workers=2)
    assert source.pod_load(NS, "workers-a") == Reading(100.0, sampled)
    assert source.pod_load(NS, "other-1") is None  # no value: 404 through the aggregator
    assert source.cluster_load(NS, "nobody") is None
    assert source.pods_by_selector(NS, f"{ELASTICWORKER_LABEL}=workers") == {
        "workers-a": Reading(100.0, sampled),
        "workers-b": Reading(0.0, sampled),
    }
    status, body = aggregated.get(f"{PATH}/namespaces/{NS}/pods/other-1/load")
    assert status == 404 and yaml.safe_load(body)["reason"] == "NotFound"


def test_the_adapter_authenticates_and_delegates_authorization(
    aggregated: Aggregated, tmp_path: Path
) -> None:
    """Straight to the adapter (not through the aggregator): identity headers without the
    front-proxy certificate are refused, a cluster user is authorized by SubjectAccessReview."""
    url = f"{aggregated.adapter_url}{PATH}/namespaces/{NS}/pods/nobody/load"
    spoofed = {"X-Remote-User": "admin", "X-Remote-Group": "system:masters"}
    assert _https_get(url, aggregated.serving_ca, headers=spoofed)[0] == 401
    assert _https_get(aggregated.adapter_url + "/healthz", aggregated.serving_ca)[0] == 200

    kubeconfig = aggregated.plane.kubeconfig_for("metrics-reader")
    cert, key = _client_pair(kubeconfig, tmp_path)
    assert _https_get(url, aggregated.serving_ca, client=(cert, key))[0] == 403
    # Through the aggregator the API server's own authorization refuses first.
    api = aggregated.api_client(kubeconfig)
    assert _get_json(api, f"{PATH}/namespaces/{NS}/pods/nobody/load", None, 5.0)[0] == 403

    k8s.RbacAuthorizationV1Api(aggregated.api_client()).create_cluster_role_binding(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "metrics-reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "elastic-airflow:custom-metrics-reader",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "metrics-reader"}
            ],
        }
    )
    # Allowed now (the adapter caches a denial for 2 s): a missing value is a 404, not a 403.
    wait_for(
        lambda: _https_get(url, aggregated.serving_ca, client=(cert, key))[0] == 404,
        timeout=20,
        interval=0.5,
        what="the reader role to take effect in the adapter",
    )
    wait_for(
        lambda: _get_json(api, f"{PATH}/namespaces/{NS}/pods/nobody/load", None, 5.0)[0] == 404,
        timeout=20,
        interval=0.5,
        what="the reader role to take effect through the aggregator",
    )


def _client_pair(kubeconfig: Path, directory: Path) -> tuple[Path, Path]:
    user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
    cert, key = directory / "client.crt", directory / "client.key"
    cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user["client-key-data"]))
    return cert, key


def _https_get(
    url: str,
    ca: Path,
    headers: dict[str, str] | None = None,
    client: tuple[Path, Path] | None = None,
) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False  # the certificate names the Service, we dial 127.0.0.1
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_collector_membership_from_the_kubernetes_api(aggregated: Aggregated) -> None:
    core = k8s.CoreV1Api(aggregated.api_client())
    for pod, ew in (("blue-1", "blue"), ("blue-2", "blue"), ("green-1", "green")):
        core.create_namespaced_pod(
            NS,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod, "labels": {ELASTICWORKER_LABEL: ew}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        )
    membership = KubeLabelMembership(core, NS, "blue")
    assert not membership.ready()
    assert membership.refresh() and membership.ready()
    assert membership.known() == {"blue-1", "blue-2"}
    assert membership.contains("blue-1") and not membership.contains("green-1")
