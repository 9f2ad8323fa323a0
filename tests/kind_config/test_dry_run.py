"""Every manifest kind-config/ renders to passes a server-side dry-run (`dry_run=All`) against a
real kube-apiserver (the CRDs installed first), and the Kubernetes 1.34 schemas
(kubernetes-validate, strict). Pods made from every workload's template are dry-run too, so the
Pod Security admission of the `restricted` namespace `airflow` checks them for real; so are the
ElasticWorker and autoscaler that the e2e runner creates from the provider's template."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes import client, dynamic

from harness.e2e.crds import install_crds
from harness.e2e.kube_providers import (
    APP_NAMESPACE,
    KindProvider,
    KubeCluster,
    e2e_kustomization,
)
from harness.e2e.manifests import create_namespaces, dry_run, label
from harness.e2e.runner import autoscaler_manifest, elastic_worker_manifest
from harness.scenario import load_scenario

from .conftest import ENTRY_POINTS, REPO, render
from .helpers import pod_from, workloads

pytestmark = pytest.mark.controlplane

K8S_VERSION = "1.34.0"  # the local control plane's minor (harness/e2e/gobuild/kubernetes)
SCENARIO = REPO / "scenarios" / "seed-safe-scale-in.yaml"
RUN_NAMESPACE = "ea-dryrun"
Rendered = Callable[[str], list[dict[str, Any]]]


@pytest.fixture(scope="module")
def api(
    admin_client: client.ApiClient, work_tree: Path, rendered: Rendered
) -> dynamic.DynamicClient:
    """The dynamic client, with the project's CRDs installed for real and Established, and the
    base's namespaces (`airflow` at the `restricted` Pod Security level) made first."""
    install_crds(admin_client, work_tree / "crds", timeout=60)
    api = dynamic.DynamicClient(admin_client)
    create_namespaces(api, rendered("base"))
    return api


def schema_errors(docs: list[dict[str, Any]]) -> list[str]:
    errors = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            # Our own kinds: the dry-run checks them against the CRDs' structural schemas.
            assert doc["apiVersion"].startswith("elasticcluster."), label(doc)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{label(doc)} at {list(error.path)}: {error.message}")
    return errors


def pods_of(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [pod_from(doc) for doc, _ in workloads(docs)]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_entry_point_passes_a_server_side_dry_run(
    api: dynamic.DynamicClient, rendered: Rendered, entry: str
) -> None:
    docs = rendered(entry)
    create_namespaces(api, docs)
    failures = dry_run(api, docs)
    assert not failures, "\n".join(failures)
    # The pods the controllers (and the operator, for the ElasticWorker) would create.
    pods = pods_of(docs)
    assert len(pods) >= 11
    failures = dry_run(api, pods)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_entry_point_matches_the_kubernetes_schemas(rendered: Rendered, entry: str) -> None:
    docs = rendered(entry)
    errors = schema_errors(docs) + schema_errors(pods_of(docs))
    assert not errors, "\n".join(errors)


def test_restricted_namespace_rejects_what_it_should(api: dynamic.DynamicClient) -> None:
    """The check above means something: a root pod is refused in `airflow`."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root-pod", "namespace": APP_NAMESPACE},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    (failure,) = dry_run(api, [pod])
    assert "violates PodSecurity" in failure


def _e2e_cluster(tree: Path, namespace: str, output: str | None, dags: tuple[str, ...]):
    scenario = load_scenario(SCENARIO)
    provider = KindProvider(runner=lambda *a, **k: None, record_pod_ends=False)
    return scenario, KubeCluster(
        provider_impl=provider, api_url="http://127.0.0.1:8080", broker="amqp://x//",
        redis=None, output=tree / "out.jsonl", scenario=scenario, work_dir=tree,
        template_source=tree, namespace=namespace,
        output_in_node=None if output is None else str(Path(output).parent),
        output_file_in_pod=output, dag_files=dags,
    )  # fmt: skip


@pytest.mark.parametrize("namespace", [APP_NAMESPACE, RUN_NAMESPACE])
def test_e2e_manifests_and_the_runners_resources_pass_a_dry_run(
    api: dynamic.DynamicClient, tmp_path: Path, namespace: str
) -> None:
    """What a provider applies (kind: namespace airflow with the shared output directory;
    existing: a namespace of its own, no host directory), and the ElasticWorker and autoscaler
    the runner creates from `worker_template()` / `autoscaler_additions()`."""
    from harness.e2e.kube_providers import prepare_work_tree

    scenario = load_scenario(SCENARIO)
    tree = prepare_work_tree(tmp_path)
    kind = namespace == APP_NAMESPACE
    output = "/var/elastic-airflow/output/run.jsonl" if kind else None
    out = e2e_kustomization(
        tree, scenario, elastic_worker="airflow-worker", output_file_in_pod=output,
        namespace=namespace, nodeports=kind, system=kind,
        images=() if kind else [{"name": "elastic-airflow-airflow",
                                 "newName": "registry.example:5000/elastic-airflow-airflow"}],
    )  # fmt: skip
    docs = render(out)
    namespaces = {d["metadata"].get("namespace") for d in docs}
    assert namespaces - {None, "elastic-airflow", "kube-system"} == {namespace}
    dags = tuple(sorted(p.name for p in (tree / "e2e-app" / "dags").glob("*.py")))
    _, cluster = _e2e_cluster(tree, namespace, output, dags)
    ew = elastic_worker_manifest(scenario, cluster)
    ewa = autoscaler_manifest(scenario, cluster)
    if kind:
        # The host directory needs a namespace without the `restricted` level: its own here,
        # since `airflow` is shared with the base's checks.
        ns = "ea-dryrun-privileged"
        for obj in (ew, ewa):
            obj["metadata"]["namespace"] = ns
        create_namespaces(
            api,
            [
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {
                        "name": ns,
                        "labels": {"pod-security.kubernetes.io/enforce": "privileged"},
                    },
                }
            ],
        )
    else:
        create_namespaces(api, docs)
    failures = dry_run(api, [d for d in docs if d["kind"] != "Namespace"] + [ew, ewa])
    failures += dry_run(api, [pod_from(ew)])
    assert not failures, "\n".join(failures)
    errors = schema_errors(docs) + schema_errors([pod_from(ew)])
    assert not errors, "\n".join(errors)
    (worker,) = ew["spec"]["template"]["spec"]["containers"]
    mounts = {m["mountPath"] for m in worker["volumeMounts"]}
    assert {f"/opt/airflow/scenario-dags/{d}" for d in dags} <= mounts
    assert ("/var/elastic-airflow/output" in mounts) == kind
    assert ewa["spec"]["scaleInSpec"]["shutdownHttpHook"] == (
        f"http://elastic-airflow-hook.{namespace}.svc:5559"
    )
