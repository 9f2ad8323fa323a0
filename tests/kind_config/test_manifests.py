"""What the kind-config manifests promise, read from the rendered kustomize output (no cluster):
probes and resources everywhere, non-root pods, the warm-shutdown worker, the prototype's
autoscaler numbers, no database reset, images the providers build, ports kind maps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from controllers.hook.__main__ import parse_args as hook_args
from controllers.metrics.collector import parse_args as collector_args
from harness.e2e.kube_providers import IMAGES, worker_pod_template
from harness.e2e.manifests import label

from .conftest import ENTRY_POINTS, KIND_CONFIG, REPO
from .helpers import containers, workloads

Rendered = Callable[[str], list[dict[str, Any]]]
# The operator's Deployment (kind-config/operator, its engineer's file) has no probe on purpose:
# a standby replica serves nothing until it holds the Lease.
NO_PROBE = {"Deployment/elastic-airflow/elastic-airflow-operator"}
OUR_IMAGES = {image.tag for image in IMAGES}


def by_name(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_entry_points_render_the_whole_stack(rendered: Rendered, entry: str) -> None:
    docs = rendered(entry)
    names = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs}
    for wanted in [
        ("Namespace", None, "elastic-airflow"),
        ("Namespace", None, "airflow"),
        ("CustomResourceDefinition", None, "elasticworkers.elasticcluster.sarweshsuman.com"),
        ("Deployment", "elastic-airflow", "elastic-airflow-operator"),
        ("Deployment", "elastic-airflow", "custom-metrics-adapter"),
        ("APIService", None, "v1beta2.custom.metrics.k8s.io"),
        ("Deployment", "elastic-airflow", "redis"),
        ("StatefulSet", "airflow", "postgresql"),
        ("StatefulSet", "airflow", "rabbitmq"),
        ("Deployment", "airflow", "airflow-api-server"),
        ("Deployment", "airflow", "airflow-scheduler"),
        ("Deployment", "airflow", "airflow-dag-processor"),
        ("Deployment", "airflow", "airflow-flower"),
        ("Deployment", "airflow", "elastic-airflow-hook"),
        ("Service", "airflow", "elastic-airflow-hook"),
        ("Secret", "airflow", "elastic-airflow-hook-token"),
        ("Deployment", "airflow", "metrics-collector"),
        ("ElasticWorker", "airflow", "airflow-worker"),
        ("ElasticWorkerAutoscaler", "airflow", "airflow-worker"),
    ]:
        assert wanted in names, f"{entry}: {wanted} missing"
    # The collector of kind-config/metrics counts the pods of its own namespace: moved, not
    # duplicated.
    assert ("Deployment", "elastic-airflow", "metrics-collector") not in names
    ids = [(d["apiVersion"], d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
           for d in docs]  # fmt: skip
    assert len(ids) == len(set(ids))


def test_operator_runs_two_replicas_with_leader_election(rendered: Rendered) -> None:
    operator = by_name(rendered("base"), "Deployment", "elastic-airflow-operator")
    assert operator["spec"]["replicas"] == 2
    assert "--leader-election" in operator["spec"]["template"]["spec"]["containers"][0]["args"]


@pytest.mark.parametrize("entry", ["base", "overlays/minikube"])
def test_every_container_has_probes_resources_and_runs_as_non_root(
    rendered: Rendered, entry: str
) -> None:
    problems = []
    for doc, template in workloads(rendered(entry)):
        pod = template["spec"]
        if not (pod.get("securityContext") or {}).get("runAsNonRoot"):
            problems.append(f"{label(doc)}: pod securityContext.runAsNonRoot")
        for kind, c in containers(template):
            where = f"{label(doc)} {kind}/{c['name']}"
            resources = c.get("resources") or {}
            if set(resources.get("requests") or {}) != {"cpu", "memory"}:
                problems.append(f"{where}: resources.requests cpu and memory")
            if "memory" not in (resources.get("limits") or {}):
                problems.append(f"{where}: resources.limits.memory")
            if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation false")
            if kind == "containers" and label(doc) not in NO_PROBE:
                if "livenessProbe" not in c:
                    problems.append(f"{where}: livenessProbe")
                if "readinessProbe" not in c:
                    problems.append(f"{where}: readinessProbe")
    assert not problems, "\n".join(problems)


def test_no_database_reset_anywhere() -> None:
    for path in [*KIND_CONFIG.rglob("*.y*ml"), *(REPO / "images").rglob("Dockerfile*")]:
        text = path.read_text()
        assert "db reset" not in text and "resetdb" not in text, path


def test_scheduler_migrates_and_the_others_wait(rendered: Rendered) -> None:
    docs = rendered("base")
    scheduler = by_name(docs, "Deployment", "airflow-scheduler")["spec"]["template"]["spec"]
    (init,) = scheduler["initContainers"]
    assert init["command"][-1].endswith("exec airflow db migrate")
    for name in ("airflow-api-server", "airflow-dag-processor"):
        spec = by_name(docs, "Deployment", name)["spec"]["template"]["spec"]
        commands = [c["command"] for c in spec["initContainers"]]
        assert ["airflow", "db", "check-migrations", "--migration-wait-timeout", "900"] in commands


def test_postgresql_keeps_its_data_on_a_claim(rendered: Rendered) -> None:
    pg = by_name(rendered("base"), "StatefulSet", "postgresql")
    (claim,) = pg["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pg["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    (container,) = pg["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PGDATA"].startswith(mounts[claim["metadata"]["name"]] + "/")


def test_flower_basic_auth_comes_from_a_secret(rendered: Rendered) -> None:
    flower = by_name(rendered("base"), "Deployment", "airflow-flower")
    (container,) = flower["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    ref = env["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    secret = by_name(rendered("base"), "Secret", ref["name"])
    assert ":" in secret["stringData"][ref["key"]]


def test_worker_gets_sigterm_as_pid_1_and_a_long_grace(rendered: Rendered) -> None:
    ew = by_name(rendered("base"), "ElasticWorker", "airflow-worker")
    spec = ew["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 5)
    assert spec["scaleInPolicy"] == {
        "name": "selector",
        "selector": {"matchLabels": {"delete": "true"}},
    }
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 300  # the demo's longest task is 100 s
    (worker,) = pod["containers"]
    # Exec form (no shell as PID 1), node name celery@<pod name>.
    assert worker["command"][:5] == [
        "airflow",
        "celery",
        "worker",
        "--celery-hostname",
        "$(POD_NAME)",
    ]
    assert "lifecycle" not in worker  # nothing runs before the SIGTERM
    env = {e["name"]: e for e in worker["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # No probe asks Celery (`inspect ping`): a cordoned or busy worker is never restarted.
    probes = yaml.safe_dump([worker["livenessProbe"], worker["readinessProbe"]])
    assert "inspect" not in probes and "celery" not in probes
    # The template the e2e providers start is this one.
    assert worker_pod_template() == spec["template"]


def test_worker_settings_feed_the_collector(rendered: Rendered) -> None:
    docs = rendered("base")
    env = by_name(docs, "ConfigMap", "airflow-env")["data"]
    assert env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "2"
    assert env["AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER"] == "1"
    assert env["AIRFLOW__CELERY__TASK_ACKS_LATE"] == "True"
    assert '"worker_send_task_events": true' in env["AIRFLOW__CELERY__EXTRA_CELERY_CONFIG"]
    (collector,) = by_name(docs, "Deployment", "metrics-collector")["spec"]["template"]["spec"][
        "containers"
    ]
    args = collector_args(
        [a.replace("$(POD_NAMESPACE)", "airflow") for a in collector["args"]]
        + ["--broker-url", "amqp://x//", "--redis-url", "redis://x/0"]
    )
    assert args.namespace == "airflow" and args.elasticworker == "airflow-worker"
    assert args.concurrency == 2 and args.queues == ["default"] and args.in_cluster


def test_autoscaler_has_the_prototypes_numbers_and_the_hook(rendered: Rendered) -> None:
    docs = rendered("base")
    ewa = by_name(docs, "ElasticWorkerAutoscaler", "airflow-worker")["spec"]
    assert ewa["scaleTargetRef"]["name"] == "airflow-worker"
    assert ewa["targetValue"] == 60
    scale_in = ewa["scaleInSpec"]
    assert scale_in["scaleInBackOff"] == 30
    assert scale_in["markForTerminationLabel"] == {"delete": "true"}
    hook_svc = by_name(docs, "Service", "elastic-airflow-hook")
    (port,) = hook_svc["spec"]["ports"]
    assert scale_in["shutdownHttpHook"].startswith(
        f"http://elastic-airflow-hook.{hook_svc['metadata']['namespace']}.svc:{port['port']}/"
    )
    token = scale_in["hookTokenSecretRef"]
    assert token["key"] in by_name(docs, "Secret", token["name"])["stringData"]
    (hook,) = by_name(docs, "Deployment", "elastic-airflow-hook")["spec"]["template"]["spec"][
        "containers"
    ]
    args = hook_args(hook["args"] + ["--broker-url", "amqp://x//"])
    assert args.port == port["port"] and args.bind == "0.0.0.0" and args.queues == ["default"]
    mounted = {v["name"]: v for v in by_name(docs, "Deployment", "elastic-airflow-hook")[
        "spec"]["template"]["spec"]["volumes"]}  # fmt: skip
    assert mounted["token"]["secret"]["secretName"] == token["name"]


def test_our_images_are_the_ones_the_providers_build(rendered: Rendered) -> None:
    used = set()
    for _, template in workloads(rendered("base")):
        for _, c in containers(template):
            if c["image"].startswith("elastic-airflow"):
                used.add(c["image"])
                assert c["imagePullPolicy"] == "IfNotPresent", c["name"]
    assert used == OUR_IMAGES
    for image in IMAGES:
        assert (REPO / image.dockerfile).is_file(), image.dockerfile


def test_kind_maps_the_nodeports_to_loopback(rendered: Rendered) -> None:
    config = yaml.safe_load((KIND_CONFIG / "kind-cluster.yaml").read_text())
    roles = [n["role"] for n in config["nodes"]]
    assert roles == ["control-plane", "worker", "worker"]
    mappings = config["nodes"][0]["extraPortMappings"]
    assert all(m["listenAddress"] == "127.0.0.1" for m in mappings)
    mapped = {m["containerPort"]: m["hostPort"] for m in mappings}
    node_ports = {
        p["nodePort"]
        for d in rendered("overlays/kind")
        if d["kind"] == "Service" and d["spec"].get("type") == "NodePort"
        for p in d["spec"]["ports"]
    }
    assert node_ports == set(mapped)
    assert mapped[30080] == 8080 and mapped[30555] == 5555  # Airflow UI, Flower


def test_helm_values_turn_the_charts_workers_off() -> None:
    values = yaml.safe_load((KIND_CONFIG / "helm" / "airflow-values.yaml").read_text())
    assert values["executor"] == "CeleryExecutor"
    assert values["workers"]["replicas"] == 0
    assert values["workers"]["keda"]["enabled"] is False
    assert values["workers"]["hpa"]["enabled"] is False
    assert values["config"]["celery"]["worker_concurrency"] == 2
    assert (KIND_CONFIG / "helm" / "README.md").is_file()
