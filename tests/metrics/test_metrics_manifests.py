"""kind-config/metrics: APIService verifies TLS, adapter delegates auth, probes and limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from controllers.metrics import certs
from controllers.metrics.collector import parse_args as collector_args

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "kind-config" / "metrics"


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def by_kind(kind: str) -> list[dict[str, Any]]:
    files = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    return [d for f in files for d in docs(f) if d["kind"] == kind]


def container_of(deployment: str) -> list[dict[str, Any]]:
    (found,) = [d for d in by_kind("Deployment") if d["metadata"]["name"] == deployment]
    return found["spec"]["template"]["spec"]["containers"]


def test_apiservice_checks_the_adapter_certificate() -> None:
    (api,) = by_kind("APIService")
    assert api["apiVersion"] == "apiregistration.k8s.io/v1"
    assert api["metadata"]["name"] == "v1beta2.custom.metrics.k8s.io"
    spec = api["spec"]
    assert (spec["group"], spec["version"]) == ("custom.metrics.k8s.io", "v1beta2")
    assert not spec.get("insecureSkipTLSVerify")
    assert spec["caBundle"]
    assert spec["service"] == {
        "name": "custom-metrics-adapter",
        "namespace": "elastic-airflow",
        "port": 443,
    }
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    (replacement,) = kustomization["replacements"]
    (target,) = replacement["targets"]
    assert target["select"]["kind"] == "APIService"
    assert target["fieldPaths"] == ["spec.caBundle"]
    generated = {g["name"]: g for g in kustomization["secretGenerator"]}
    assert replacement["source"]["name"] in generated


def test_adapter_delegates_authentication_and_authorization() -> None:
    bindings = by_kind("ClusterRoleBinding") + by_kind("RoleBinding")
    roles = {(b["roleRef"]["kind"], b["roleRef"]["name"]): b for b in bindings}
    delegator = roles[("ClusterRole", "system:auth-delegator")]
    reader = roles[("Role", "extension-apiserver-authentication-reader")]
    assert reader["metadata"]["namespace"] == "kube-system"
    for binding in (delegator, reader):
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": "custom-metrics-adapter",
                "namespace": "elastic-airflow",
            }
        ]


@pytest.mark.parametrize("name", ["custom-metrics-adapter", "metrics-collector"])
def test_deployments_have_probes_and_resources(name: str) -> None:
    (container,) = container_of(name)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_collector_manifest_arguments_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    (deployment,) = [
        d for d in by_kind("Deployment") if d["metadata"]["name"] == "metrics-collector"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    monkeypatch.setenv("ELASTIC_AIRFLOW_BROKER_URL", "amqp://x//")
    monkeypatch.setenv("ELASTIC_AIRFLOW_REDIS_URL", "redis://x/0")
    args = collector_args(a.replace("$(POD_NAMESPACE)", "airflow") for a in container["args"])
    assert args.in_cluster and args.elasticworker and args.interval == 3
    assert args.ttl == 15 and args.queues == ["default"]


def test_serving_certificate_names_the_service(tmp_path: Path) -> None:
    names = certs.service_names("custom-metrics-adapter", "elastic-airflow")
    paths = certs.issue(names).write(tmp_path)
    cert = x509.load_pem_x509_certificate(paths["tls.crt"].read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "custom-metrics-adapter.elastic-airflow.svc" in sans.get_values_for_type(x509.DNSName)
    ca = x509.load_pem_x509_certificate(paths["ca.crt"].read_bytes())
    cert.verify_directly_issued_by(ca)
    assert paths["tls.key"].stat().st_mode & 0o077 == 0
