"""The kind, minikube and existing providers with `run` replaced at the process boundary: the
exact command lines and their order (create, build, load, apply, wait, collect, delete), `keep`
skipping the delete, a failed step saving the logs and still cleaning up."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.e2e import kube_providers as kp
from harness.e2e.kube_providers import (
    CommandError,
    ExistingProvider,
    KindProvider,
    MinikubeProvider,
    PodEndRecorder,
    Result,
    make_provider,
)
from harness.e2e.providers import ProviderUnavailable
from harness.scenario import load_scenario

from .conftest import REPO

SCENARIO = REPO / "scenarios" / "seed-safe-scale-in.yaml"
KIND_CTX = ["kubectl", "--context", "kind-elastic-airflow"]
APPLY = ["apply", "--server-side", "--force-conflicts", "--field-manager=elastic-airflow-e2e"]
CRDS = [
    "crd/elasticworkers.elasticcluster.sarweshsuman.com",
    "crd/elasticworkerautoscalers.elasticcluster.sarweshsuman.com",
]


class FakeRunner:
    """Records every command; answers from `outputs` (longest matching prefix first) and fails
    the commands `fails` matches."""

    def __init__(
        self,
        outputs: dict[tuple[str, ...], str] | None = None,
        fails: Callable[[list[str]], bool] = lambda cmd: False,
    ) -> None:
        self.calls: list[list[str]] = []
        self.background: list[list[str]] = []
        self.outputs = outputs or {}
        self.fails = fails

    def __call__(
        self,
        cmd: Sequence[str],
        *,
        check: bool = True,
        capture: bool = True,
        timeout: float | None = None,
        background: bool = False,
    ) -> Result:
        cmd = [str(c) for c in cmd]
        self.calls.append(cmd)
        if background:
            self.background.append(cmd)
        if self.fails(cmd):
            if check:
                raise CommandError(cmd, 1, "boom")
            return Result(1, "", "boom")
        for prefix in sorted(self.outputs, key=len, reverse=True):
            if tuple(cmd[: len(prefix)]) == prefix:
                return Result(0, self.outputs[prefix])
        return Result(0, "")

    def index(self, cmd: list[str]) -> int:
        return self.calls.index(cmd)


def rollout_outputs(ctx: list[str], app_ns: str = "airflow") -> dict[tuple[str, ...], str]:
    get = ["get", "deployments,statefulsets"]
    return {
        (*ctx, *get, "-n", "elastic-airflow", "-o", "name"): "deployment.apps/redis\n",
        (*ctx, *get, "-n", app_ns, "-o", "name"): "statefulset.apps/postgresql\n",
        (*ctx, "get", "pods", "-n", "elastic-airflow", "-o", "name"): "pod/redis-1\n",
        (*ctx, "get", "pods", "-n", app_ns, "-o", "name"): "pod/postgresql-0\n",
    }


def build_and_load(load: Callable[[str], list[str]]) -> list[list[str]]:
    builds = [
        ["docker", "build", "-f", str(REPO / i.dockerfile), "-t", i.tag, str(REPO)]
        for i in kp.IMAGES
    ]
    return builds + [load(i.tag) for i in kp.IMAGES]


def rollout_calls(ctx: list[str], app_ns: str = "airflow") -> list[list[str]]:
    get = ["get", "deployments,statefulsets"]
    return [
        [*ctx, *get, "-n", "elastic-airflow", "-o", "name"],
        [*ctx, *get, "-n", app_ns, "-o", "name"],
        [*ctx, "rollout", "status", "deployment.apps/redis", "-n", "elastic-airflow",
         "--timeout=600s"],
        [*ctx, "rollout", "status", "statefulset.apps/postgresql", "-n", app_ns,
         "--timeout=600s"],
        [*ctx, "wait", "--for=condition=Available", "--timeout=300s",
         "apiservice/v1beta2.custom.metrics.k8s.io"],
    ]  # fmt: skip


@pytest.fixture
def scenario():
    return load_scenario(SCENARIO)


def kind(runner: FakeRunner, tmp_path: Path, **kwargs: Any) -> KindProvider:
    return KindProvider(
        runner=runner, record_pod_ends=False, output_root=tmp_path / "out",
        failure_logs=tmp_path / "reports", **kwargs,
    )  # fmt: skip


def test_kind_runs_every_step_in_order_then_deletes(scenario, tmp_path: Path) -> None:
    runner = FakeRunner(rollout_outputs(KIND_CTX))
    provider = kind(runner, tmp_path, keep=False, node_image="kindest/node:v1.34.0")
    messages: list[str] = []
    cluster = provider.open(scenario, tmp_path / "work", messages.append)
    tree = tmp_path / "work" / "kind-config"
    load = lambda tag: ["kind", "load", "docker-image", tag, "--name", "elastic-airflow"]  # noqa: E731
    assert runner.calls == [
        ["kind", "version"],
        ["docker", "info"],
        ["kind", "get", "clusters"],
        ["kind", "create", "cluster", "--name", "elastic-airflow",
         "--config", str(tree / "kind-cluster.e2e.yaml"), "--wait", "180s",
         "--image", "kindest/node:v1.34.0"],
        *build_and_load(load),
        [*KIND_CTX, *APPLY, "-k", str(tree / "crds")],
        [*KIND_CTX, "wait", "--for=condition=Established", "--timeout=120s", *CRDS],
        [*KIND_CTX, *APPLY, "-k", str(tree / "e2e")],
        *rollout_calls(KIND_CTX),
    ]  # fmt: skip
    # Every node mounts the host directory the tasks append their output lines to.
    config = yaml.safe_load((tree / "kind-cluster.e2e.yaml").read_text())
    assert [n["role"] for n in config["nodes"]] == ["control-plane", "worker", "worker"]
    for node in config["nodes"]:
        assert node["extraMounts"] == [
            {"hostPath": str(tmp_path / "out"), "containerPath": "/var/elastic-airflow/output"}
        ]
    assert cluster.output_file.parent == tmp_path / "out"
    assert cluster.api_url == "http://127.0.0.1:8080"
    assert cluster.broker_url == "amqp://airflow:airflow-demo-broker@127.0.0.1:35672//"
    assert cluster.redis_url == "redis://127.0.0.1:36379/0"
    assert cluster.namespace == "airflow" and cluster.provider == "kind"
    assert set(cluster.timings) == {"create", "build", "load", "apply", "rollouts"}
    before = len(runner.calls)
    cluster.close()
    cluster.close()  # twice is harmless
    assert runner.calls[before:] == [["kind", "delete", "cluster", "--name", "elastic-airflow"]]


def test_kind_keep_skips_the_delete_and_reuses_a_cluster(scenario, tmp_path: Path) -> None:
    outputs = {**rollout_outputs(KIND_CTX), ("kind", "get", "clusters"): "other\nelastic-airflow\n"}
    runner = FakeRunner(outputs)
    messages: list[str] = []
    cluster = kind(runner, tmp_path, keep=True).open(scenario, tmp_path / "w", messages.append)
    assert not any(c[:3] == ["kind", "create", "cluster"] for c in runner.calls)
    # The previous run's ElasticWorker and autoscaler go before the stack is applied again.
    cleanup = [*KIND_CTX, "delete", "elasticworkerautoscalers,elasticworkers", "--all", "-n",
               "airflow", "--ignore-not-found", "--wait=true", "--timeout=300s"]  # fmt: skip
    tree = tmp_path / "w" / "kind-config"
    assert runner.index(cleanup) == runner.index([*KIND_CTX, *APPLY, "-k", str(tree / "e2e")]) - 1
    cluster.close()
    assert not any(c[:2] == ["kind", "delete"] for c in runner.calls)
    assert any("keeping the kind cluster" in m for m in messages)


def test_kind_failure_saves_logs_and_events_then_deletes(scenario, tmp_path: Path) -> None:
    runner = FakeRunner(
        rollout_outputs(KIND_CTX),
        fails=lambda cmd: "rollout" in cmd and "statefulset.apps/postgresql" in cmd,
    )
    with pytest.raises(CommandError, match=r"rollout status statefulset\.apps/postgresql"):
        kind(runner, tmp_path, keep=False).open(scenario, tmp_path / "w", lambda m: None)
    failed = runner.index(
        [*KIND_CTX, "rollout", "status", "statefulset.apps/postgresql", "-n", "airflow",
         "--timeout=600s"]
    )  # fmt: skip
    after = runner.calls[failed + 1 :]
    logs = [*KIND_CTX, "logs", "-n", "airflow", "pod/postgresql-0", "--all-containers",
            "--prefix", "--timestamps"]  # fmt: skip
    for wanted in [
        [*KIND_CTX, "get", "events", "-n", "elastic-airflow", "--sort-by=.lastTimestamp", "-o",
         "wide"],
        [*KIND_CTX, "get", "events", "-n", "airflow", "--sort-by=.lastTimestamp", "-o", "wide"],
        [*KIND_CTX, "describe", "pods", "-n", "airflow"],
        logs,
        [*logs, "--previous"],
        [*KIND_CTX, "get", "apiservice", "v1beta2.custom.metrics.k8s.io", "-o", "yaml"],
    ]:  # fmt: skip
        assert wanted in after, wanted
    assert after[-1] == ["kind", "delete", "cluster", "--name", "elastic-airflow"]
    # Next to the reports (the runner removes its work directory): one folder per failure.
    (logs,) = (tmp_path / "reports").iterdir()
    assert logs.name.startswith("kind-")
    export = ["kind", "export", "logs", str(logs / "kind"), "--name", "elastic-airflow"]
    assert export in after
    saved = {p.name for p in logs.iterdir()}
    assert {"events-airflow.log", "pod-airflow-postgresql-0.log", "describe-pods-airflow.log"} <= (
        saved
    )


def test_kind_unavailable_without_docker(scenario, tmp_path: Path) -> None:
    runner = FakeRunner(fails=lambda cmd: cmd == ["docker", "info"])
    with pytest.raises(ProviderUnavailable, match="Docker daemon"):
        kind(runner, tmp_path).open(scenario, tmp_path / "w", lambda m: None)
    assert runner.calls == [["kind", "version"], ["docker", "info"]]  # nothing was started
    with pytest.raises(ProviderUnavailable):
        make_provider("kind", runner=runner)
    with pytest.raises(ProviderUnavailable, match="not a Kubernetes provider"):
        make_provider("local")


def test_minikube_runs_every_step_in_order_then_deletes(scenario, tmp_path: Path) -> None:
    ctx = ["kubectl", "--context", "elastic-airflow"]
    outputs = {**rollout_outputs(ctx), ("minikube", "ip", "-p", "elastic-airflow"): "192.0.2.7\n"}
    runner = FakeRunner(outputs, fails=lambda cmd: cmd[:2] == ["minikube", "status"])
    provider = MinikubeProvider(
        runner=runner, record_pod_ends=False, output_root=tmp_path / "out", keep=False
    )
    cluster = provider.open(scenario, tmp_path / "work", lambda m: None)
    tree = tmp_path / "work" / "kind-config"
    load = lambda tag: ["minikube", "image", "load", tag, "-p", "elastic-airflow"]  # noqa: E731
    assert runner.calls == [
        ["minikube", "version"],
        ["docker", "info"],
        ["minikube", "status", "-p", "elastic-airflow"],
        ["minikube", "start", "-p", "elastic-airflow", "--driver=docker", "--cpus=4",
         "--memory=8g", "--mount",
         f"--mount-string={tmp_path / 'out'}:/var/elastic-airflow/output"],
        *build_and_load(load),
        [*ctx, *APPLY, "-k", str(tree / "crds")],
        [*ctx, "wait", "--for=condition=Established", "--timeout=120s", *CRDS],
        [*ctx, *APPLY, "-k", str(tree / "e2e")],
        *rollout_calls(ctx),
        ["minikube", "ip", "-p", "elastic-airflow"],
    ]  # fmt: skip
    assert cluster.api_url == "http://192.0.2.7:30080"
    assert cluster.broker_url.endswith("@192.0.2.7:30672//")
    assert cluster.redis_url == "redis://192.0.2.7:30379/0"
    before = len(runner.calls)
    cluster.close()
    assert runner.calls[before:] == [["minikube", "delete", "-p", "elastic-airflow"]]


def test_existing_uses_a_namespace_per_run_and_deletes_only_it(
    scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(kp.REGISTRY_ENV, raising=False)
    ports = iter([41001, 41002, 41003])
    monkeypatch.setattr(kp, "_free_port", lambda: next(ports))
    ctx = ["kubectl", "--context", "prod"]
    provider = ExistingProvider(
        runner=FakeRunner(), record_pod_ends=False, port_ready=lambda port: True, keep=False
    )
    provider.prepare("run1")  # the run's namespace is known before open: for the outputs
    ns = provider.namespace
    outputs = {**rollout_outputs(ctx, ns), ("kubectl", "config", "current-context"): "prod\n"}
    runner = FakeRunner(outputs)
    provider.run = runner
    provider.prepare = lambda run_id: None  # keep ea-run1
    cluster = provider.open(scenario, tmp_path / "work", lambda m: None)
    tree = tmp_path / "work" / "kind-config"
    assert ns == "ea-run1" and cluster.namespace == ns
    forwards = [
        [*ctx, "port-forward", "-n", ns, "svc/airflow-api-server", "41001:8080"],
        [*ctx, "port-forward", "-n", ns, "svc/rabbitmq", "41002:5672"],
        [*ctx, "port-forward", "-n", "elastic-airflow", "svc/redis", "41003:6379"],
    ]
    assert runner.calls == [
        ["kubectl", "get", "--raw=/readyz"],
        ["kubectl", "config", "current-context"],
        # no registry: nothing built or pushed, the cluster pulls the images itself
        [*ctx, *APPLY, "-k", str(tree / "crds")],
        [*ctx, "wait", "--for=condition=Established", "--timeout=120s", *CRDS],
        [*ctx, *APPLY, "-k", str(tree / "e2e-system")],
        [*ctx, *APPLY, "-k", str(tree / "e2e")],
        *rollout_calls(ctx, ns),
        *forwards,
    ]  # fmt: skip
    assert runner.background == forwards
    assert cluster.api_url == "http://127.0.0.1:41001"
    assert cluster.broker_url.endswith("@127.0.0.1:41002//")
    top = yaml.safe_load((tree / "e2e" / "kustomization.yaml").read_text())
    assert top["resources"] == ["../e2e-ns"]
    assert yaml.safe_load((tree / "e2e-ns" / "kustomization.yaml").read_text())["namespace"] == ns
    assert cluster.autoscaler_additions()["shutdownHttpHook"] == (
        f"http://elastic-airflow-hook.{ns}.svc:5559"
    )
    before = len(runner.calls)
    cluster.close()
    assert runner.calls[before:] == [[*ctx, "delete", "namespace", ns, "--wait=false"]]


def test_existing_pushes_to_a_registry_and_points_the_manifests_there(
    scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kp, "_free_port", lambda: 41000)
    ctx = ["kubectl", "--context", "lab"]
    provider = ExistingProvider(
        runner=FakeRunner(), record_pod_ends=False, port_ready=lambda port: True,
        context="lab", registry="registry.example:5000/team", keep=True,
    )  # fmt: skip
    provider.prepare("run2")
    runner = FakeRunner(rollout_outputs(ctx, provider.namespace))
    provider.run = runner
    provider.prepare = lambda run_id: None
    cluster = provider.open(scenario, tmp_path / "work", lambda m: None)
    pushes = []
    for image in kp.IMAGES:
        remote = f"registry.example:5000/team/{image.tag}"
        pushes += [["docker", "tag", image.tag, remote], ["docker", "push", remote]]
    builds = build_and_load(lambda tag: [])[: len(kp.IMAGES)]
    start = runner.index(builds[0])
    assert runner.calls[start : start + len(builds) + len(pushes)] == builds + pushes
    tree = tmp_path / "work" / "kind-config"
    for name in ("e2e", "e2e-system"):
        images = yaml.safe_load((tree / name / "kustomization.yaml").read_text())["images"]
        assert {"name": "elastic-airflow-airflow",
                "newName": "registry.example:5000/team/elastic-airflow-airflow",
                "newTag": "3.3.2"} in images  # fmt: skip
    cluster.close()
    assert not any("delete" in c for c in runner.calls)  # keep: the namespace stays


def test_worker_template_is_the_committed_one_with_the_scenarios_settings(
    scenario, tmp_path: Path
) -> None:
    runner = FakeRunner(rollout_outputs(KIND_CTX))
    cluster = kind(runner, tmp_path, keep=True).open(scenario, tmp_path / "w", lambda m: None)
    template = cluster.worker_template()
    committed = kp.worker_pod_template()
    assert template["metadata"] == committed["metadata"]
    spec = template["spec"]
    assert spec["terminationGracePeriodSeconds"] == scenario.cluster.termination_grace
    (worker,) = spec["containers"]
    assert worker["command"] == committed["spec"]["containers"][0]["command"]
    mounts = {m["mountPath"]: m for m in worker["volumeMounts"]}
    assert mounts["/opt/airflow/scenario-dags/dag_2.py"]["subPath"] == "dag_2.py"
    assert mounts["/var/elastic-airflow/output"]["name"] == "e2e-output"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["scenario-dags"]["configMap"]["name"] == "airflow-scenario-dags"
    assert volumes["e2e-output"]["hostPath"]["path"] == "/var/elastic-airflow/output"
    # The DAG files write where the workers mount the shared directory.
    dag = (tmp_path / "w" / "kind-config" / "e2e-app" / "dags" / "dag_2.py").read_text()
    assert f"/var/elastic-airflow/output/{cluster.output_file.name}" in dag
    assert cluster.autoscaler_additions() == {
        "shutdownHttpHook": "http://elastic-airflow-hook.airflow.svc:5559",
        "hookTokenSecretRef": {"name": "elastic-airflow-hook-token", "key": "token"},
        "hookTimeoutSeconds": 15,
    }
    files = cluster.log_files()
    assert files["events-airflow"].parent == tmp_path / "w" / "cluster-logs"
    cluster.close()


def test_pod_end_recorder_tells_sigterm_from_sigkill() -> None:
    recorder = PodEndRecorder(api=None, namespace="airflow")  # type: ignore[arg-type]

    def pod(uid: str, code: int | None, deleted: bool) -> dict[str, Any]:
        meta: dict[str, Any] = {"uid": uid}
        if deleted:
            meta |= {"deletionTimestamp": "2026-01-01T00:10:00Z", "deletionGracePeriodSeconds": 600}
        state = {"running": {}} if code is None else {
            "terminated": {"exitCode": code, "finishedAt": "2026-01-01T00:01:00Z"}}  # fmt: skip
        return {"metadata": meta, "status": {"containerStatuses": [
            {"restartCount": 0, "state": state}]}}  # fmt: skip

    recorder.observe(pod("a", None, True))
    recorder.observe(pod("a", 0, True))
    recorder.observe(pod("b", 137, True))
    recorder.observe(pod("c", None, False))
    ends = recorder.snapshot()
    assert ends["a"].ended_by == "SIGTERM" and ends["a"].exit_code == 0
    # SIGTERM at the deletion request: 00:10 (deletionTimestamp) minus the 600 s grace = 00:00
    assert ends["a"].sigterm_at == ends["a"].finished_at - 60
    assert ends["b"].ended_by == "SIGKILL"
    assert ends["c"].ended_by == "running"


def test_run_is_the_process_boundary(tmp_path: Path) -> None:
    """The real `run`: output captured, exit codes, a missing program is 127."""
    ok = kp.run(["sh", "-c", "echo out; echo err >&2"])
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "out\n", "err\n")
    assert kp.run(["sh", "-c", "exit 3"], check=False).returncode == 3
    with pytest.raises(CommandError, match="exited with 3"):
        kp.run(["sh", "-c", "exit 3"])
    assert kp.run(["no-such-program-here"], check=False).returncode == 127
    background = kp.run(["sleep", "30"], background=True)
    assert background.process is not None and background.process.poll() is None
    background.stop()
    assert background.process.poll() is not None
