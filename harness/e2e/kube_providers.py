"""The Kubernetes cluster providers of `elastic-airflow e2e --cluster kind|minikube|existing`.

    provider = make_provider("kind")              # or KindProvider(keep=True), ...
    cluster = provider.open(scenario, work_dir, progress)    # a harness.e2e.providers.Cluster
    ...                                                       # the runner's run
    cluster.close()                                           # delete the cluster unless keep

`open` runs the steps in this order, each a method of its own (the small interface that
`harness.e2e.providers` plugs in): `available` (or `check`, which raises `ProviderUnavailable`),
`create` the cluster, `build_images` (docker build), `load_images` (kind load / minikube image
load / docker push), `apply` the manifests (`kubectl apply -k`, CRDs first and Established),
`wait_rollouts` (every Deployment and StatefulSet, with a progress bar, then the custom metrics
APIService); `collect_logs` (pod logs, events, descriptions) runs when a step fails and for the
runner's `log_files`; `delete` runs at `close` unless `keep` (`--keep`, or
ELASTIC_AIRFLOW_E2E_KEEP=1).

- `kind`: a kind cluster from kind-config/kind-cluster.yaml (plus a host directory mounted into
  every node for the tasks' output file), the images built with Docker and loaded with
  `kind load docker-image`, the stack of kind-config/ (system + airflow) with the NodePorts
  that the kind config maps to 127.0.0.1.
- `minikube`: the same with `minikube start --driver=docker --mount`, `minikube image load`,
  endpoints at `minikube ip`.
- `existing`: the current kubeconfig context (pinned at `create`); the cluster-wide part
  (CRDs, operator, adapter, metrics Redis) applied as it is and the Airflow part in a namespace
  of its own per run (`ea-<id>`), endpoints through `kubectl port-forward`. The images must be
  pullable: with ELASTIC_AIRFLOW_IMAGE_REGISTRY set they are built, tagged and pushed there.
  There is no shared directory with the nodes, so the tasks' output file stays empty.

The stack is kind-config/base/system and kind-config/base/airflow as committed; the e2e run adds
(in a copy of kind-config/ in the work directory, never in the repository): the adapter's
certificate, the scenario's DAG files as the ConfigMap `airflow-scenario-dags` (the dag-processor
and each worker mount them file by file), the scenario's Celery settings, and the runner's own
ElasticWorker and autoscaler (from the pod template of kind-config/base/workers/workers.yaml).

Every external command goes through ONE function, `run(cmd, ...)`; the providers take it as a
parameter, so the tests replace it at the process boundary and assert the command lines.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from harness.e2e.providers import Cluster, ClusterProvider, ProcessEnd, ProviderUnavailable

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from harness.e2e.airflow_api import AirflowAPI
    from harness.scenario import Scenario

REPO = Path(__file__).resolve().parents[2]
KIND_CONFIG = REPO / "kind-config"
KIND_CLUSTER_CONFIG = KIND_CONFIG / "kind-cluster.yaml"
WORKERS_MANIFEST = Path("base") / "workers" / "workers.yaml"  # relative to kind-config/

SYSTEM_NAMESPACE = "elastic-airflow"
APP_NAMESPACE = "airflow"
QUEUE = "default"
CLUSTER_NAME = "elastic-airflow"
FIELD_MANAGER = "elastic-airflow-e2e"
CRD_NAMES = (
    "elasticworkers.elasticcluster.sarweshsuman.com",
    "elasticworkerautoscalers.elasticcluster.sarweshsuman.com",
)
APISERVICE = "v1beta2.custom.metrics.k8s.io"
OPERATOR_DEPLOYMENT = "elastic-airflow-operator"
OPERATOR_REPLICAS = 2
HOOK_SERVICE = "elastic-airflow-hook"
HOOK_PORT = 5559
HOOK_SECRET = "elastic-airflow-hook-token"
HOOK_TIMEOUT_SECONDS = 15
SCENARIO_DAGS_CONFIGMAP = "airflow-scenario-dags"
SCENARIO_DAGS_IN_POD = "/opt/airflow/scenario-dags"
OUTPUT_IN_NODE = "/var/elastic-airflow/output"  # the host directory, as every node sees it
AIRFLOW_USER = ("admin", "admin")

KEEP_ENV = "ELASTIC_AIRFLOW_E2E_KEEP"
KIND_IMAGE_ENV = "ELASTIC_AIRFLOW_KIND_IMAGE"
REGISTRY_ENV = "ELASTIC_AIRFLOW_IMAGE_REGISTRY"

ROLLOUT_TIMEOUT = "600s"
CRD_TIMEOUT = "120s"
APISERVICE_TIMEOUT = "300s"
#: Container states that mean "this will not get better by waiting".
FATAL_WAITING = ("CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                 "CreateContainerConfigError", "CreateContainerError")  # fmt: skip

Progress = Callable[[str], None]


# --- the one door to external programs ---------------------------------------------------------


class CommandError(RuntimeError):
    """An external command failed; the message has the command line and its output's tail."""

    def __init__(self, cmd: Sequence[str], returncode: int, output: str) -> None:
        self.cmd, self.returncode, self.output = list(cmd), returncode, output
        super().__init__(f"`{' '.join(cmd)}` exited with {returncode}:\n{output[-3000:]}")


@dataclass
class Result:
    """What `run` returns: the exit code and output, or the process when run in background."""

    returncode: int
    stdout: str = ""
    stderr: str = ""
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """Stop a background process by its pid (SIGTERM, then SIGKILL after 5 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run(
    cmd: Sequence[str],
    *,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
    background: bool = False,
) -> Result:
    """Run `cmd` (no shell). `capture=False` streams its output to our stderr (docker build);
    `background=True` starts it and returns at once (`Result.process`, stop with `.stop()`).

    A missing program is exit code 127 (or `CommandError` with `check`)."""
    argv = [str(part) for part in cmd]
    if background:
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        except OSError as error:
            if check:
                raise CommandError(argv, 127, str(error)) from None
            return Result(127, "", str(error))
        return Result(0, process=proc)
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else sys.stderr,
            stderr=subprocess.PIPE if capture else sys.stderr,
            timeout=timeout,
            check=False,
        )
    except OSError as error:  # not installed
        if check:
            raise CommandError(argv, 127, str(error)) from None
        return Result(127, "", str(error))
    except subprocess.TimeoutExpired as error:
        output = (error.stdout or b"").decode(errors="replace")
        if check:
            raise CommandError(argv, -1, f"timed out after {timeout} s\n{output}") from None
        return Result(-1, output, f"timed out after {timeout} s")
    result = Result(
        done.returncode,
        (done.stdout or b"").decode(errors="replace") if capture else "",
        (done.stderr or b"").decode(errors="replace") if capture else "",
    )
    if check and result.returncode != 0:
        raise CommandError(argv, result.returncode, result.stdout + result.stderr)
    return result


Runner = Callable[..., Result]


# --- images -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """An image the stack runs: its tag and its Dockerfile (the build context is the repo)."""

    tag: str
    dockerfile: str  # relative to the repository root

    @property
    def name(self) -> str:
        return self.tag.rsplit(":", 1)[0]


IMAGES = (
    # the operator (kind-config/operator)
    Image("elastic-airflow-operator:latest", "controllers/Dockerfile"),
    # the custom metrics adapter (kind-config/metrics), the collector and the drain hook
    Image("elastic-airflow-metrics:latest", "controllers/metrics/Dockerfile"),
    # Airflow: api-server, scheduler, dag-processor, Flower and the Celery workers
    Image("elastic-airflow-airflow:3.3.2", "images/airflow/Dockerfile"),
)


# --- the stack as the work directory holds it ---------------------------------------------------


def _secret_value(kind_config: Path, name: str, key: str) -> str:
    """A value of a Secret of kind-config/base/airflow/secrets.yaml (one source of truth)."""
    for doc in yaml.safe_load_all((kind_config / "base" / "airflow" / "secrets.yaml").read_text()):
        if doc and doc.get("kind") == "Secret" and doc["metadata"]["name"] == name:
            return str(doc["stringData"][key])
    raise KeyError(f"{name}/{key} in kind-config/base/airflow/secrets.yaml")


def worker_pod_template(kind_config: Path = KIND_CONFIG) -> dict[str, Any]:
    """The pod template of the committed ElasticWorker (kind-config/base/workers/workers.yaml)."""
    for doc in yaml.safe_load_all((kind_config / WORKERS_MANIFEST).read_text()):
        if doc and doc.get("kind") == "ElasticWorker":
            return copy.deepcopy(doc["spec"]["template"])
    raise KeyError(f"no ElasticWorker in {kind_config / WORKERS_MANIFEST}")


def prepare_work_tree(work_dir: Path, kind_config: Path = KIND_CONFIG) -> Path:
    """A copy of kind-config/ in `work_dir` with the adapter's serving certificate and CA."""
    from controllers.metrics import certs

    target = work_dir / "kind-config"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(kind_config, target, ignore=shutil.ignore_patterns("tls.*", "ca.crt"))
    names = certs.service_names("custom-metrics-adapter", SYSTEM_NAMESPACE)
    certs.issue(names).write(target / "metrics" / "certs")
    return target


def _json_patch(group: str, kind: str, name: str, namespace: str, ops: list[dict]) -> dict:
    target = {"kind": kind, "name": name, "namespace": namespace}
    if group:
        target["group"] = group
    return {"target": target, "patch": yaml.safe_dump(ops, sort_keys=False)}


def e2e_kustomization(
    tree: Path,
    scenario: Scenario,
    *,
    elastic_worker: str,
    output_file_in_pod: str | None,
    namespace: str | None = None,
    nodeports: bool = True,
    system: bool = True,
    images: Sequence[dict[str, str]] = (),
) -> Path:
    """Write `tree/e2e-app` (the Airflow part with the scenario's DAGs and settings) and
    `tree/e2e` (what `kubectl apply -k` gets); return the latter.

    `namespace`: move the Airflow part there (existing clusters, one namespace per run).
    `output_file_in_pod`: the file the DAG tasks append to (None: the file path of no volume).
    """
    from harness.e2e.dagfiles import write_dag_files

    c = scenario.cluster
    app = tree / "e2e-app"
    dags = app / "dags"
    output = output_file_in_pod or "/tmp/elastic-airflow-output.jsonl"
    files = sorted(p.name for p in write_dag_files(scenario, dags, output))
    dag_mounts = [
        {
            "name": "scenario-dags",
            "mountPath": f"{SCENARIO_DAGS_IN_POD}/{name}",
            "subPath": name,
            "readOnly": True,
        }
        for name in files
    ]
    celery_env = {
        "AIRFLOW__CORE__DAGS_FOLDER": SCENARIO_DAGS_IN_POD,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(c.worker_concurrency),
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": str(c.prefetch_multiplier),
        "AIRFLOW__CELERY__TASK_ACKS_LATE": str(c.acks_late),
        "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": str(c.task_retries),
    }
    patches = [
        # The scenario's DAG files replace the image's, and its Celery settings the demo's.
        {"patch": yaml.safe_dump({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "airflow-env", "namespace": APP_NAMESPACE},
            "data": celery_env,
        }, sort_keys=False)},
        _json_patch("apps", "Deployment", "airflow-dag-processor", APP_NAMESPACE, [
            {"op": "add", "path": "/spec/template/spec/volumes/-", "value": {
                "name": "scenario-dags", "configMap": {"name": SCENARIO_DAGS_CONFIGMAP}}},
            *({"op": "add", "path": "/spec/template/spec/containers/0/volumeMounts/-",
               "value": m} for m in dag_mounts),
        ]),
        _json_patch("apps", "Deployment", "metrics-collector", APP_NAMESPACE, [
            {"op": "replace", "path": "/spec/template/spec/containers/0/args", "value": [
                "--namespace=$(POD_NAMESPACE)",
                f"--elasticworker={elastic_worker}",
                "--in-cluster",
                f"--interval={c.metrics_interval:g}",
                f"--concurrency={c.worker_concurrency}",
                f"--queue={QUEUE}",
                "--metrics-port=9808",
            ]},
        ]),
    ]  # fmt: skip
    if output_file_in_pod is not None:
        # The workers mount a host directory (the nodes share it with the harness): hostPath is
        # outside the `restricted` Pod Security profile of the demo namespace.
        patches.append({"patch": yaml.safe_dump({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {
                "name": APP_NAMESPACE,
                "labels": {"pod-security.kubernetes.io/enforce": "privileged"}},
        }, sort_keys=False)})  # fmt: skip
    app.mkdir(parents=True, exist_ok=True)
    (app / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../base/airflow"],
        "configMapGenerator": [{
            "name": SCENARIO_DAGS_CONFIGMAP, "namespace": APP_NAMESPACE,
            "files": [f"dags/{name}" for name in files],
            "options": {"disableNameSuffixHash": True},
        }],
        "patches": patches,
    }, sort_keys=False))  # fmt: skip

    top: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../e2e-app"],
    }
    if namespace is not None and namespace != APP_NAMESPACE:
        # A nested kustomization: the namespace moves only the Airflow part.
        (tree / "e2e-ns").mkdir(parents=True, exist_ok=True)
        (tree / "e2e-ns" / "kustomization.yaml").write_text(yaml.safe_dump({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": namespace,
            "resources": ["../e2e-app"],
        }, sort_keys=False))  # fmt: skip
        top["resources"] = ["../e2e-ns"]
    if system:
        top["resources"].insert(0, "../base/system")
        top["patches"] = [
            _json_patch("apps", "Deployment", OPERATOR_DEPLOYMENT, SYSTEM_NAMESPACE, [
                {"op": "add", "path": "/spec/template/spec/containers/0/args/-",
                 "value": f"--sync-period={c.sync_period:g}"},
            ]),
        ]  # fmt: skip
    if nodeports:
        top["components"] = ["../overlays/components/nodeports"]
    if images:
        top["images"] = list(images)
    out = tree / "e2e"
    out.mkdir(parents=True, exist_ok=True)
    (out / "kustomization.yaml").write_text(yaml.safe_dump(top, sort_keys=False))
    return out


# --- the pods' ends, as the kubelet reported them ------------------------------------------------


class PodEndRecorder:
    """Watches the pods of a namespace and remembers how each container ended, by pod uid:
    the deletion request (SIGTERM = deletionTimestamp - grace), the exit code and time."""

    def __init__(self, api: ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.ends: dict[str, ProcessEnd] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="pod-ends", daemon=True)

    def start(self) -> PodEndRecorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def snapshot(self) -> dict[str, ProcessEnd]:
        with self._lock:
            return dict(self.ends)

    def observe(self, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            return
        sigterm = None
        if meta.get("deletionTimestamp"):
            grace = float(meta.get("deletionGracePeriodSeconds") or 0)
            deleted = _epoch(meta["deletionTimestamp"])
            sigterm = None if deleted is None else deleted - grace
        finished = exit_code = None
        restarts = 0
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            restarts += int(status.get("restartCount") or 0)
            terminated = (status.get("state") or {}).get("terminated")
            if terminated:
                finished = _epoch(terminated.get("finishedAt"))
                exit_code = terminated.get("exitCode")
        with self._lock:
            before = self.ends.get(uid)
            if before is not None:
                sigterm = sigterm if sigterm is not None else before.sigterm_at
                finished = finished if finished is not None else before.finished_at
                exit_code = exit_code if exit_code is not None else before.exit_code
            sigkill = finished if exit_code == 137 else None
            self.ends[uid] = ProcessEnd(sigterm, sigkill, finished, exit_code, restarts)

    def _loop(self) -> None:
        from kubernetes import client, watch

        core = client.CoreV1Api(self.api)
        while not self._stop.is_set():
            try:
                stream = watch.Watch().stream(
                    core.list_namespaced_pod, self.namespace, timeout_seconds=30
                )
                for event in stream:
                    raw = event.get("raw_object") or {}
                    self.observe(raw)
                    if self._stop.is_set():
                        break
            except Exception as error:  # the API server restarts, a timeout: watch again
                self.errors.append(str(error))
                self._stop.wait(1.0)


def _epoch(value: Any) -> float | None:
    if not value:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# --- the cluster the runner gets -----------------------------------------------------------------


@dataclass(eq=False)
class KubeCluster(Cluster):
    """A real cluster with the stack deployed; the runner's and the auditor's handles."""

    provider_impl: KubeProvider
    api_url: str
    broker: str
    redis: str | None
    output: Path
    scenario: Scenario
    work_dir: Path
    template_source: Path
    namespace: str = APP_NAMESPACE  # (Cluster gives it a class default: keep it after these)
    output_in_node: str | None = None
    output_file_in_pod: str | None = None
    dag_files: tuple[str, ...] = ()
    recorder: PodEndRecorder | None = None
    forwards: list[Result] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    rbac_source: str = "kind-config/operator/rbac.yaml"
    startup_seconds: float = 0.0
    _restarts: int = 0
    _admin: ApiClient | None = None
    _closed: bool = False

    def __post_init__(self) -> None:
        self.provider = self.provider_impl.name

    # -- endpoints -------------------------------------------------------------------------------

    def api_client(self) -> ApiClient:
        if self._admin is None:
            self._admin = self.provider_impl.api_client()
        return self._admin

    @property
    def broker_url(self) -> str:
        return self.broker

    @property
    def redis_url(self) -> str | None:
        return self.redis

    @property
    def queue(self) -> str:
        return QUEUE

    def airflow_api(self) -> AirflowAPI:
        from harness.e2e.airflow_api import AirflowAPI

        return AirflowAPI(self.api_url, *AIRFLOW_USER, timeout=30.0)

    @property
    def output_file(self) -> Path:
        return self.output

    # -- what the runner deploys -------------------------------------------------------------------

    def worker_template(self) -> dict[str, Any]:
        """The committed worker template, with the scenario's DAG files, Celery settings and
        grace period, and (kind, minikube) the shared output directory."""
        c = self.scenario.cluster
        template = worker_pod_template(self.template_source)
        spec = template["spec"]
        spec["terminationGracePeriodSeconds"] = round(c.termination_grace)
        container = spec["containers"][0]
        command = list(container["command"])
        if "--concurrency" in command:
            command[command.index("--concurrency") + 1] = str(c.worker_concurrency)
        container["command"] = command
        mounts = container.setdefault("volumeMounts", [])
        volumes = spec.setdefault("volumes", [])
        volumes.append({"name": "scenario-dags", "configMap": {"name": SCENARIO_DAGS_CONFIGMAP}})
        for name in self.dag_files:
            mounts.append({
                "name": "scenario-dags", "mountPath": f"{SCENARIO_DAGS_IN_POD}/{name}",
                "subPath": name, "readOnly": True,
            })  # fmt: skip
        if self.output_in_node is not None:
            volumes.append({
                "name": "e2e-output",
                "hostPath": {"path": self.output_in_node, "type": "Directory"},
            })  # fmt: skip
            mounts.append({"name": "e2e-output", "mountPath": self.output_in_node})
        return template

    def autoscaler_additions(self) -> dict[str, Any]:
        return {
            "shutdownHttpHook": f"http://{HOOK_SERVICE}.{self.namespace}.svc:{HOOK_PORT}",
            "hookTokenSecretRef": {"name": HOOK_SECRET, "key": "token"},
            "hookTimeoutSeconds": HOOK_TIMEOUT_SECONDS,
        }

    def prepare_namespace(self) -> None:
        """Nothing to add: the namespace, the hook and its token Secret are in the manifests."""

    # -- faults and audit -------------------------------------------------------------------------

    def restart_operator(self, downtime: float) -> tuple[int, int]:
        """Every operator pod force-deleted (grace 0: SIGKILL) with the Deployment at zero
        replicas, `downtime` s without an operator, then the replicas back. Pods have no pid
        the harness can see: the numbers are the operator's generations (n, n + 1)."""
        from kubernetes import client

        apps = client.AppsV1Api(self.api_client())
        core = client.CoreV1Api(self.api_client())
        scale = {"spec": {"replicas": 0}}
        apps.patch_namespaced_deployment_scale(OPERATOR_DEPLOYMENT, SYSTEM_NAMESPACE, scale)
        pods = core.list_namespaced_pod(
            SYSTEM_NAMESPACE, label_selector=f"app.kubernetes.io/name={OPERATOR_DEPLOYMENT}"
        )
        for pod in pods.items:
            with contextlib.suppress(client.ApiException):
                core.delete_namespaced_pod(
                    pod.metadata.name, SYSTEM_NAMESPACE, grace_period_seconds=0
                )
        if downtime > 0:
            time.sleep(downtime)
        scale = {"spec": {"replicas": OPERATOR_REPLICAS}}
        apps.patch_namespaced_deployment_scale(OPERATOR_DEPLOYMENT, SYSTEM_NAMESPACE, scale)
        self._restarts += 1
        return self._restarts, self._restarts + 1

    def process_ends(self) -> dict[str, ProcessEnd]:
        return self.recorder.snapshot() if self.recorder is not None else {}

    def rss_bytes(self) -> dict[str, int]:
        return {}  # no metrics-server in a kind/minikube cluster by default

    def check_alive(self) -> None:
        """Raise when a container of the stack is in a state that waiting will not fix."""
        from kubernetes import client

        core = client.CoreV1Api(self.api_client())
        for ns in (SYSTEM_NAMESPACE, self.namespace):
            for pod in core.list_namespaced_pod(ns).items:
                statuses = [
                    *(pod.status.init_container_statuses or []),
                    *(pod.status.container_statuses or []),
                ]
                for status in statuses:
                    waiting = status.state.waiting if status.state else None
                    if waiting is not None and waiting.reason in FATAL_WAITING:
                        raise RuntimeError(
                            f"{ns}/{pod.metadata.name} container {status.name}: "
                            f"{waiting.reason}: {waiting.message or ''} (see docs/kind.md)"
                        )

    def log_files(self) -> dict[str, Path]:
        """Pod logs, events and descriptions of both namespaces, fetched now (files only)."""
        files = self.provider_impl.collect_logs(self.work_dir / "cluster-logs", self.namespace)
        return {name: path for name, path in files.items() if path.is_file()}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.recorder is not None:
            self.recorder.stop()
        for forward in self.forwards:
            forward.stop()
        self.provider_impl.teardown()


# --- the providers -------------------------------------------------------------------------------


def _say(message: str) -> None:
    print(f"[e2e] {message}", file=sys.stderr, flush=True)


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
        return True
    return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "elastic-airflow"


class KubeProvider(ClusterProvider):
    """The steps every Kubernetes provider runs; subclasses say how for their cluster."""

    name = "kube"
    uses_docker = True

    def __init__(
        self,
        *,
        keep: bool | None = None,
        runner: Runner = run,
        sleep: Callable[[float], None] = time.sleep,
        images: Sequence[Image] = IMAGES,
        record_pod_ends: bool = True,
        port_ready: Callable[[int], bool] = _port_open,
        output_root: Path | None = None,
        failure_logs: Path | None = None,
    ) -> None:
        self.keep = os.environ.get(KEEP_ENV) == "1" if keep is None else keep
        self.run = runner
        self.sleep = sleep
        self.images = tuple(images)
        self.record_pod_ends = record_pod_ends
        self.port_ready = port_ready
        self.output_root = output_root or _cache_dir() / f"{self.name}-output"
        # Where `open` saves the logs when bringing the stack up fails (the runner has no
        # cluster to ask then, and removes its work directory): next to the reports.
        self.failure_logs = failure_logs or REPO / "reports" / "e2e" / "cluster-logs"
        self.progress: Progress = _say
        self.context: str | None = None
        self.namespace = APP_NAMESPACE
        self.created = False
        self.reused = False  # the cluster was there before (kept from an earlier run)
        self._deleted = False

    # -- helpers -----------------------------------------------------------------------------------

    def kubectl(self, *args: str) -> list[str]:
        context = ["--context", self.context] if self.context else []
        return ["kubectl", *context, *args]

    def api_client(self) -> ApiClient:
        from kubernetes import config

        return config.new_client_from_config(context=self.context)

    def namespaces(self) -> tuple[str, ...]:
        return (SYSTEM_NAMESPACE, self.namespace)

    def _ok(self, cmd: list[str]) -> bool:
        return self.run(cmd, check=False, timeout=60).returncode == 0

    # -- the small interface ----------------------------------------------------------------------

    def available(self) -> bool:
        raise NotImplementedError

    def unavailable_reason(self) -> str:
        raise NotImplementedError

    def check(self) -> None:
        if not self.available():
            raise ProviderUnavailable(f"--cluster {self.name}: {self.unavailable_reason()}")

    def create(self, tree: Path | None = None) -> None:
        raise NotImplementedError

    def build_images(self, images: Sequence[Image] | None = None) -> None:
        for image in images or self.images:
            self.progress(f"building {image.tag} from {image.dockerfile}")
            self.run(
                ["docker", "build", "-f", str(REPO / image.dockerfile), "-t", image.tag, str(REPO)],
                capture=False,
            )

    def load_images(self, images: Sequence[Image] | None = None) -> None:
        raise NotImplementedError

    def apply(self, paths: Iterable[Path]) -> None:
        for path in paths:
            self.progress(f"kubectl apply -k {path}")
            self.run(
                self.kubectl(
                    "apply", "--server-side", "--force-conflicts",
                    f"--field-manager={FIELD_MANAGER}", "-k", str(path),
                ),
                timeout=300,
            )  # fmt: skip

    def wait_crds(self) -> None:
        self.run(
            self.kubectl(
                "wait", "--for=condition=Established", f"--timeout={CRD_TIMEOUT}",
                *(f"crd/{name}" for name in CRD_NAMES),
            ),
            timeout=180,
        )  # fmt: skip

    def wait_rollouts(self) -> None:
        """Every Deployment and StatefulSet of the stack rolled out, then the APIService."""
        from tqdm import tqdm

        targets = []
        for ns in self.namespaces():
            out = self.run(
                self.kubectl("get", "deployments,statefulsets", "-n", ns, "-o", "name"),
                timeout=60,
            ).stdout
            targets += [(ns, line.strip()) for line in out.splitlines() if line.strip()]
        self.progress(f"waiting for {len(targets)} rollouts (images pulled, probes passing)")
        with tqdm(total=len(targets), unit="rollout", desc="rollouts", file=sys.stderr) as bar:
            for ns, name in targets:
                bar.set_postfix_str(f"{ns}/{name}")
                self.run(
                    self.kubectl(
                        "rollout", "status", name, "-n", ns, f"--timeout={ROLLOUT_TIMEOUT}"
                    ),
                    timeout=660,
                )
                bar.update(1)
        self.run(
            self.kubectl(
                "wait", "--for=condition=Available", f"--timeout={APISERVICE_TIMEOUT}",
                f"apiservice/{APISERVICE}",
            ),
            timeout=360,
        )  # fmt: skip

    def collect_logs(self, directory: Path, namespace: str | None = None) -> dict[str, Path]:
        """Pod logs (current and previous), events, descriptions and the stack's objects of
        every namespace of the stack into `directory`; name -> file."""
        directory.mkdir(parents=True, exist_ok=True)
        files: dict[str, Path] = {}

        def save(name: str, cmd: list[str]) -> None:
            result = self.run(cmd, check=False, timeout=120)
            text = result.stdout + (f"\n[stderr]\n{result.stderr}" if result.stderr else "")
            path = directory / f"{name}.log"
            path.write_text(text)
            files[name] = path

        for ns in (SYSTEM_NAMESPACE, namespace or self.namespace):
            save(
                f"events-{ns}",
                self.kubectl("get", "events", "-n", ns, "--sort-by=.lastTimestamp", "-o", "wide"),
            )
            save(
                f"objects-{ns}",
                self.kubectl(
                    "get",
                    "all,elasticworkers,elasticworkerautoscalers,pvc,configmaps,secrets",
                    "-n",
                    ns,
                    "-o",
                    "wide",
                ),
            )
            save(f"describe-pods-{ns}", self.kubectl("describe", "pods", "-n", ns))
            pods = self.run(
                self.kubectl("get", "pods", "-n", ns, "-o", "name"), check=False, timeout=60
            ).stdout.split()
            for pod in pods:
                short = pod.split("/", 1)[-1]
                save(
                    f"pod-{ns}-{short}",
                    self.kubectl(
                        "logs", "-n", ns, pod, "--all-containers", "--prefix", "--timestamps"
                    ),
                )
                save(
                    f"pod-{ns}-{short}-previous",
                    self.kubectl(
                        "logs",
                        "-n",
                        ns,
                        pod,
                        "--all-containers",
                        "--prefix",
                        "--timestamps",
                        "--previous",
                    ),
                )
        save("apiservice", self.kubectl("get", "apiservice", APISERVICE, "-o", "yaml"))
        save("nodes", self.kubectl("describe", "nodes"))
        files.update(self.collect_cluster_logs(directory))
        return files

    def collect_cluster_logs(self, directory: Path) -> dict[str, Path]:
        return {}

    def delete(self) -> None:
        raise NotImplementedError

    def teardown(self) -> None:
        """`delete` unless `keep` (then say how to reach or remove the cluster)."""
        if self._deleted:
            return
        self._deleted = True
        if self.keep:
            self.progress(f"keeping the {self.name} cluster ({self.keep_hint()})")
            return
        self.delete()

    def keep_hint(self) -> str:
        return ""

    # -- open: the whole sequence -----------------------------------------------------------------

    def endpoints(self) -> tuple[str, str, str | None, list[Result]]:
        """(Airflow URL, broker URL, Redis URL, background processes) as the harness sees them."""
        raise NotImplementedError

    def output_dirs(self, run_id: str) -> tuple[Path | None, str | None]:
        """(host directory, the same directory in the nodes) of the tasks' output file."""
        host = self.output_root
        return host, OUTPUT_IN_NODE

    def image_overrides(self) -> list[dict[str, str]]:
        return []

    def open(self, scenario: Scenario, work_dir: Path, progress: Progress) -> KubeCluster:
        from harness.scenario import resources

        self.progress = progress
        self.check()
        began = time.monotonic()
        timings: dict[str, float] = {}
        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        run_id = uuid.uuid4().hex[:8]
        self.prepare(run_id)
        ew, _ = resources(scenario)
        ew_name = ew.metadata.name or "airflow-worker"
        host_out, node_out = self.output_dirs(run_id)
        output_in_pod = f"{node_out}/{run_id}.jsonl" if node_out else None
        output = (host_out or work_dir) / f"{run_id}.jsonl"
        if host_out is not None:
            host_out.mkdir(parents=True, exist_ok=True)
            host_out.chmod(0o777)  # the workers write as uid 50000
        tree = prepare_work_tree(work_dir)
        app = e2e_kustomization(
            tree, scenario, elastic_worker=ew_name, output_file_in_pod=output_in_pod,
            namespace=self.namespace, nodeports=self.nodeports, system=self.system_in_run,
            images=self.image_overrides(),
        )  # fmt: skip
        dag_files = tuple(sorted(p.name for p in (tree / "e2e-app" / "dags").glob("*.py")))
        try:
            for step, action in (
                ("create", lambda: self.create(tree)),
                ("build", self.build_images),
                ("load", self.load_images),
                ("apply", lambda: self.apply_stack(tree, app)),
                ("rollouts", self.wait_rollouts),
            ):
                started = time.monotonic()
                action()
                timings[step] = round(time.monotonic() - started, 1)
            api_url, broker, redis, forwards = self.endpoints()
        except BaseException:
            if self.created:
                logs = self.failure_logs / f"{self.name}-{time.strftime('%Y%m%d-%H%M%S')}-{run_id}"
                with contextlib.suppress(Exception):
                    saved = self.collect_logs(logs)
                    progress(f"the stack did not come up: {len(saved)} log files in {logs}")
                self.teardown()
            raise
        cluster = KubeCluster(
            provider_impl=self, namespace=self.namespace, api_url=api_url, broker=broker,
            redis=redis, output=output, scenario=scenario, work_dir=work_dir,
            template_source=tree, output_in_node=node_out, output_file_in_pod=output_in_pod,
            dag_files=dag_files, forwards=forwards, timings=timings,
        )  # fmt: skip
        if self.record_pod_ends:
            cluster.recorder = PodEndRecorder(cluster.api_client(), self.namespace).start()
        cluster.startup_seconds = time.monotonic() - began
        return cluster

    nodeports = True
    system_in_run = True

    def prepare(self, run_id: str) -> None:
        """Before anything: pick names that depend on the run."""

    def apply_stack(self, tree: Path, app: Path) -> None:
        self.apply([tree / "crds"])
        self.wait_crds()
        if self.reused:
            self.remove_leftovers()
        self.apply([app])

    def remove_leftovers(self) -> None:
        """A kept cluster still has the previous run's ElasticWorker and autoscaler (the runner
        creates them under fixed names): delete them and, with them, their worker pods."""
        self.progress(f"removing the previous run's ElasticWorkers from {self.namespace}")
        self.run(
            self.kubectl(
                "delete", "elasticworkerautoscalers,elasticworkers", "--all", "-n",
                self.namespace, "--ignore-not-found", "--wait=true", "--timeout=300s",
            ),
            check=False,
            timeout=360,
        )  # fmt: skip

    def wait_port(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.port_ready(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing answers on 127.0.0.1:{port} after {timeout:.0f} s")
            self.sleep(0.2)


def _broker_url(kind_config: Path, host: str, port: int) -> str:
    user = _secret_value(kind_config, "airflow-broker", "username")
    password = _secret_value(kind_config, "airflow-broker", "password")
    return f"amqp://{user}:{password}@{host}:{port}//"


class KindProvider(KubeProvider):
    """A kind cluster (Docker): created, images built and loaded, stack applied, deleted."""

    name = "kind"

    def __init__(self, *, cluster_name: str = CLUSTER_NAME, node_image: str | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.cluster_name = cluster_name
        self.node_image = node_image if node_image is not None else os.environ.get(KIND_IMAGE_ENV)
        self.context = f"kind-{cluster_name}"

    def available(self) -> bool:
        return self._ok(["kind", "version"]) and self._ok(["docker", "info"])

    def unavailable_reason(self) -> str:
        return "needs `kind` on PATH and a Docker daemon that `docker info` reaches"

    def cluster_config(self, tree: Path) -> Path:
        """kind-config/kind-cluster.yaml with the output directory mounted into every node."""
        config = yaml.safe_load((tree / "kind-cluster.yaml").read_text())
        mount = {"hostPath": str(self.output_root), "containerPath": OUTPUT_IN_NODE}
        for node in config["nodes"]:
            node.setdefault("extraMounts", []).append(dict(mount))
        path = tree / "kind-cluster.e2e.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def create(self, tree: Path | None = None) -> None:
        clusters = self.run(["kind", "get", "clusters"], check=False, timeout=60).stdout.split()
        self.created = True
        if self.cluster_name in clusters:
            self.progress(f"kind cluster {self.cluster_name} exists: reusing it")
            self.reused = True
            return
        config = self.cluster_config(tree or KIND_CONFIG)
        cmd = ["kind", "create", "cluster", "--name", self.cluster_name, "--config", str(config),
               "--wait", "180s"]  # fmt: skip
        if self.node_image:
            cmd += ["--image", self.node_image]
        self.progress(f"creating kind cluster {self.cluster_name} (1 control plane, 2 workers)")
        self.run(cmd, capture=False, timeout=900)

    def load_images(self, images: Sequence[Image] | None = None) -> None:
        for image in images or self.images:
            self.progress(f"loading {image.tag} into kind")
            self.run(
                ["kind", "load", "docker-image", image.tag, "--name", self.cluster_name],
                timeout=900,
            )

    def endpoints(self) -> tuple[str, str, str | None, list[Result]]:
        tree = KIND_CONFIG
        return (
            "http://127.0.0.1:8080",
            _broker_url(tree, "127.0.0.1", 35672),
            "redis://127.0.0.1:36379/0",
            [],
        )

    def collect_cluster_logs(self, directory: Path) -> dict[str, Path]:
        target = directory / "kind"
        self.run(["kind", "export", "logs", str(target), "--name", self.cluster_name],
                 check=False, timeout=300)  # fmt: skip
        return {"kind-export": target} if target.exists() else {}

    def delete(self) -> None:
        self.progress(f"deleting kind cluster {self.cluster_name}")
        self.run(["kind", "delete", "cluster", "--name", self.cluster_name], timeout=300)

    def keep_hint(self) -> str:
        return f"kubectl --context {self.context}; kind delete cluster --name {self.cluster_name}"


class MinikubeProvider(KubeProvider):
    """A minikube profile with the Docker driver; `minikube image load` for the images."""

    name = "minikube"

    def __init__(self, *, profile: str = CLUSTER_NAME, cpus: int = 4, memory: str = "8g",
                 kubernetes_version: str | None = None, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.profile = profile
        self.cpus = cpus
        self.memory = memory
        self.kubernetes_version = kubernetes_version
        self.context = profile

    def available(self) -> bool:
        return self._ok(["minikube", "version"]) and self._ok(["docker", "info"])

    def unavailable_reason(self) -> str:
        return "needs `minikube` on PATH and a Docker daemon that `docker info` reaches"

    def create(self, tree: Path | None = None) -> None:
        self.created = True
        if self._ok(["minikube", "status", "-p", self.profile]):
            self.progress(f"minikube profile {self.profile} is running: reusing it")
            self.reused = True
            return
        cmd = [
            "minikube", "start", "-p", self.profile, "--driver=docker",
            f"--cpus={self.cpus}", f"--memory={self.memory}",
            "--mount", f"--mount-string={self.output_root}:{OUTPUT_IN_NODE}",
        ]  # fmt: skip
        if self.kubernetes_version:
            cmd.append(f"--kubernetes-version={self.kubernetes_version}")
        self.progress(f"starting minikube profile {self.profile}")
        self.run(cmd, capture=False, timeout=900)

    def load_images(self, images: Sequence[Image] | None = None) -> None:
        for image in images or self.images:
            self.progress(f"loading {image.tag} into minikube")
            self.run(["minikube", "image", "load", image.tag, "-p", self.profile], timeout=900)

    def endpoints(self) -> tuple[str, str, str | None, list[Result]]:
        ip = self.run(["minikube", "ip", "-p", self.profile], timeout=60).stdout.strip()
        return (
            f"http://{ip}:30080",
            _broker_url(KIND_CONFIG, ip, 30672),
            f"redis://{ip}:30379/0",
            [],
        )

    def collect_cluster_logs(self, directory: Path) -> dict[str, Path]:
        target = directory / "minikube.log"
        self.run(["minikube", "logs", "-p", self.profile, "--file", str(target)],
                 check=False, timeout=300)  # fmt: skip
        return {"minikube": target} if target.exists() else {}

    def delete(self) -> None:
        self.progress(f"deleting minikube profile {self.profile}")
        self.run(["minikube", "delete", "-p", self.profile], timeout=300)

    def keep_hint(self) -> str:
        return f"kubectl --context {self.context}; minikube delete -p {self.profile}"


class ExistingProvider(KubeProvider):
    """The cluster of the current kubeconfig context: the Airflow part in `ea-<run id>`."""

    name = "existing"
    nodeports = False
    system_in_run = False

    def __init__(self, *, context: str | None = None, registry: str | None = None,
                 install_system: bool = True, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.context = context
        self.registry = registry if registry is not None else os.environ.get(REGISTRY_ENV)
        self.install_system = install_system

    def available(self) -> bool:
        return self._ok(self.kubectl("get", "--raw=/readyz"))

    def unavailable_reason(self) -> str:
        return "the current kubeconfig context does not answer (`kubectl get --raw=/readyz`)"

    def prepare(self, run_id: str) -> None:
        self.namespace = f"ea-{run_id}"

    def output_dirs(self, run_id: str) -> tuple[Path | None, str | None]:
        return None, None  # nothing the nodes and the harness share

    def create(self, tree: Path | None = None) -> None:
        if self.context is None:
            self.context = self.run(
                ["kubectl", "config", "current-context"], timeout=30
            ).stdout.strip()
        self.created = True
        self.progress(f"existing cluster, context {self.context}, namespace {self.namespace}")

    def pushed(self, image: Image) -> str:
        assert self.registry
        return f"{self.registry.rstrip('/')}/{image.tag}"

    def build_images(self, images: Sequence[Image] | None = None) -> None:
        if not self.registry:
            self.progress(
                f"no {REGISTRY_ENV}: the cluster must be able to pull "
                + ", ".join(i.tag for i in images or self.images)
            )
            return
        super().build_images(images)

    def load_images(self, images: Sequence[Image] | None = None) -> None:
        if not self.registry:
            return
        for image in images or self.images:
            self.run(["docker", "tag", image.tag, self.pushed(image)], timeout=60)
            self.progress(f"pushing {self.pushed(image)}")
            self.run(["docker", "push", self.pushed(image)], capture=False, timeout=1800)

    def image_overrides(self) -> list[dict[str, str]]:
        if not self.registry:
            return []
        overrides = []
        for image in self.images:
            name, tag = self.pushed(image).rsplit(":", 1)
            overrides.append({"name": image.name, "newName": name, "newTag": tag})
        return overrides

    def apply_stack(self, tree: Path, app: Path) -> None:
        if self.install_system:
            self.apply([tree / "crds"])
            self.wait_crds()
            system = tree / "e2e-system"
            system.mkdir(exist_ok=True)
            body: dict[str, Any] = {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["../base/system"],
            }
            if self.image_overrides():
                body["images"] = self.image_overrides()
            (system / "kustomization.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
            self.apply([system])
        self.apply([app])

    def endpoints(self) -> tuple[str, str, str | None, list[Result]]:
        forwards = []
        ports = {}
        for ns, service, remote in (
            (self.namespace, "airflow-api-server", 8080),
            (self.namespace, "rabbitmq", 5672),
            (SYSTEM_NAMESPACE, "redis", 6379),
        ):
            local = _free_port()
            forwards.append(self.run(
                self.kubectl("port-forward", "-n", ns, f"svc/{service}", f"{local}:{remote}"),
                background=True,
            ))  # fmt: skip
            ports[service] = local
        try:
            for port in ports.values():
                self.wait_port(port)
        except BaseException:
            for forward in forwards:
                forward.stop()
            raise
        return (
            f"http://127.0.0.1:{ports['airflow-api-server']}",
            _broker_url(KIND_CONFIG, "127.0.0.1", ports["rabbitmq"]),
            f"redis://127.0.0.1:{ports['redis']}/0",
            forwards,
        )

    def delete(self) -> None:
        self.progress(f"deleting namespace {self.namespace} (the cluster-wide part stays)")
        self.run(self.kubectl("delete", "namespace", self.namespace, "--wait=false"), timeout=120)

    def keep_hint(self) -> str:
        return f"namespace {self.namespace}; kubectl delete namespace {self.namespace}"


PROVIDER_CLASSES: dict[str, type[KubeProvider]] = {
    "kind": KindProvider,
    "minikube": MinikubeProvider,
    "existing": ExistingProvider,
}


def make_provider(name: str, **kwargs: Any) -> KubeProvider:
    """`kind`, `minikube` or `existing`; `ProviderUnavailable` when it cannot run here."""
    try:
        provider = PROVIDER_CLASSES[name](**kwargs)
    except KeyError:
        raise ProviderUnavailable(
            f"--cluster {name}: not a Kubernetes provider ({', '.join(PROVIDER_CLASSES)})"
        ) from None
    provider.check()
    return provider


def _main(argv: Sequence[str] | None = None) -> int:
    """`python -m harness.e2e.kube_providers render DIR`: the e2e manifests of a scenario,
    as `kubectl kustomize` would see them, without a cluster (for a look before a run)."""
    import argparse

    from harness.scenario import load_scenario

    parser = argparse.ArgumentParser(prog="python -m harness.e2e.kube_providers")
    parser.add_argument("scenario", type=Path)
    parser.add_argument("work_dir", type=Path)
    args = parser.parse_args(argv)
    scenario = load_scenario(args.scenario)
    tree = prepare_work_tree(args.work_dir)
    out = e2e_kustomization(tree, scenario, elastic_worker="airflow-worker",
                            output_file_in_pod=f"{OUTPUT_IN_NODE}/run.jsonl")  # fmt: skip
    print(json.dumps({"kustomization": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
