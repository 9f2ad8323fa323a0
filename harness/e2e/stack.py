"""The `local` cluster: the whole stack of one scenario as private processes on 127.0.0.1.

    stack = LocalStack(scenario, work_dir, progress=print)
    stack.start()          # everything up, or everything stopped again and an exception
    ...
    stack.close()          # every process stopped by pid (process groups), in reverse order

What runs (each process in its own session, so it is stopped with everything it forked):

- PostgreSQL (Airflow's metadata and Celery's results), RabbitMQ (the broker; `consumer_timeout`
  raised above any scenario's task, see `harness.services.RabbitMQServer`), Redis (the metrics);
- etcd + kube-apiserver (`LocalControlPlane`) with the node agent, which runs each pod's command
  as a local process and SIGTERMs / SIGKILLs it on deletion like a kubelet; the CRDs of
  `kind-config/crds/`, the operator's ClusterRole of `kind-config/operator/rbac.yaml` bound to a
  user whose kubeconfig the operator gets (cluster-admin only when that file is missing);
- Airflow 3 (`AirflowStack`: api-server, scheduler, dag-processor; no Flower, nothing here reads
  it) with the scenario's DAG files; its workers are the ElasticWorker's pods, whose template
  (`worker_template()`) runs `airflow celery worker --celery-hostname $(POD_NAME)` with the same
  settings as the stack, task events on (the collector and the auditor read them), and the pod
  name as Airflow's hostname of the task instances;
- the drain hook (`python -m controllers.hook`, Bearer token from a file, also in a Secret),
  the collector (`python -m controllers.metrics.collector`, members by the ElasticWorker's pod
  label) and the operator (`python -m controllers`, load from Redis).

Start-up runs independent parts side by side: the four servers at once, then Airflow's
migration and start-up next to the Kubernetes side.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from harness.e2e.airflow import AirflowStack, airflow_venv, pinned_version
from harness.e2e.airflow_api import AirflowAPI
from harness.e2e.controlplane import LocalControlPlane
from harness.e2e.crds import CRD_DIR, CRDError, install_crds, load_documents
from harness.e2e.dagfiles import write_dag_files
from harness.e2e.nodeagent import NodeAgent
from harness.e2e.providers import Cluster, ProcessEnd
from harness.scenario import Scenario, resources
from harness.services import (
    LOOPBACK,
    ManagedProcess,
    PostgresServer,
    RabbitMQServer,
    RedisServer,
    free_ports,
    spawn,
)

REPO = Path(__file__).resolve().parents[2]
RBAC_FILE = REPO / "kind-config" / "operator" / "rbac.yaml"
OPERATOR_USER = "elastic-airflow-operator"
COLLECTOR_USER = "elastic-airflow-collector"
NAMESPACE = "default"
HOOK_SECRET = "elastic-airflow-hook-token"
QUEUE = "default"
#: Above any task of a scenario: a late-ack delivery older than this would be redelivered.
RABBIT_CONSUMER_TIMEOUT_MS = 6 * 3600 * 1000
HOOK_CALL_TIMEOUT = 5.0
#: The module that gives Airflow the pod name as the task instances' hostname.
HOSTNAME_MODULE = "ea_pod_hostname"
_STOP_TIMEOUT = 15.0
_READY_TIMEOUT = 60.0


class StackError(RuntimeError):
    """A part of the local stack did not start or died; the message carries its log's tail."""


def _python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of our own Python services: this interpreter, the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (OSError, ValueError):
        return False


def _session_rss(sessions: dict[str, int]) -> dict[str, int]:
    """Resident bytes of every live process, summed per named session id."""
    by_sid: dict[int, int] = dict.fromkeys(sessions.values(), 0)
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                stat = handle.read()
            fields = stat[stat.rfind(")") + 2 :].split()
            sid = int(fields[3])
            if sid not in by_sid or fields[0] == "Z":
                continue
            with open(f"/proc/{entry.name}/statm") as handle:
                by_sid[sid] += int(handle.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return {name: by_sid[sid] for name, sid in sessions.items()}


def _own_rss() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class LocalStack(Cluster):
    """Everything of one scenario on loopback; see the module docstring."""

    provider = "local"

    def __init__(
        self,
        scenario: Scenario,
        work_dir: str | Path,
        *,
        progress: Callable[[str], None] = lambda message: None,
        namespace: str = NAMESPACE,
    ) -> None:
        self.scenario = scenario
        self.work_dir = Path(work_dir).resolve()
        self.progress = progress
        self.namespace = namespace
        ew, _ = resources(scenario)
        self.elastic_worker = ew.metadata.name or "airflow-worker"
        self.dags_dir = self.work_dir / "dags"
        self.logs_dir = self.work_dir / "logs"
        self._output = self.work_dir / "output.jsonl"
        self.hook_token = secrets.token_urlsafe(24)
        self.hook_token_file = self.work_dir / "hook-token"
        self.hook_port = self.collector_port = 0
        self.postgres: PostgresServer | None = None
        self.rabbit: RabbitMQServer | None = None
        self.redis: RedisServer | None = None
        self.control_plane: LocalControlPlane | None = None
        self.node_agent: NodeAgent | None = None
        self.airflow: AirflowStack | None = None
        self.hook: ManagedProcess | None = None
        self.collector: ManagedProcess | None = None
        self.operator: ManagedProcess | None = None
        self.operator_kubeconfig: Path | None = None
        self.operator_restarts = 0
        self.rbac_source = "none"
        self.timings: dict[str, float] = {}
        self._admin: k8s.ApiClient | None = None
        self._lock = threading.RLock()
        self._closed = False
        self._restarting = False

    # -- Cluster: endpoints ------------------------------------------------------------------------

    def api_client(self) -> k8s.ApiClient:
        if self._admin is None:
            assert self.control_plane is not None, "start the stack first"
            self._admin = self.control_plane.api_client()
        return self._admin

    @property
    def broker_url(self) -> str:
        assert self.rabbit is not None
        return self.rabbit.url

    @property
    def redis_url(self) -> str | None:
        return self.redis.url if self.redis is not None else None

    @property
    def queue(self) -> str:
        return QUEUE

    def airflow_api(self) -> AirflowAPI:
        assert self.airflow is not None
        return self.airflow.api()

    @property
    def output_file(self) -> Path:
        return self._output

    @property
    def hook_url(self) -> str:
        return f"http://{LOOPBACK}:{self.hook_port}"

    # -- start -------------------------------------------------------------------------------------

    def start(self) -> LocalStack:
        started = time.monotonic()
        for directory in (self.work_dir, self.dags_dir, self.logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        try:
            self._start_servers()
            self._start_rest()
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _timed(self, name: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            began = time.monotonic()
            value = fn()
            self.timings[name] = round(time.monotonic() - began, 2)
            return value

        return run

    def _start_servers(self) -> None:
        """PostgreSQL, RabbitMQ, Redis, the control plane and the Airflow venv, side by side."""
        self.progress("starting PostgreSQL, RabbitMQ, Redis, etcd + kube-apiserver")
        self.postgres = PostgresServer(database="airflow")
        self.rabbit = RabbitMQServer(consumer_timeout_ms=RABBIT_CONSUMER_TIMEOUT_MS)
        self.redis = RedisServer()
        self.control_plane = LocalControlPlane()
        jobs: dict[str, Callable[[], Any]] = {
            "postgres": self.postgres.start,
            "rabbitmq": self.rabbit.start,
            "redis": self.redis.start,
            "controlplane": self.control_plane.start,
            "airflow-venv": airflow_venv,
        }
        with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="stack-start") as pool:
            futures = {name: pool.submit(self._timed(name, job)) for name, job in jobs.items()}
            errors = _gather(futures)
        if errors:
            raise StackError("; ".join(f"{name}: {error}" for name, error in errors.items()))
        self._venv = futures["airflow-venv"].result()
        self.progress(
            "servers up ("
            + ", ".join(f"{k} {v:.0f} s" for k, v in self.timings.items() if k != "airflow-venv")
            + ")"
        )

    def _start_rest(self) -> None:
        """Airflow in this thread (its start-up cleans up after itself on Ctrl-C), the
        Kubernetes side, the hook, the collector and the operator in another."""
        write_dag_files(self.scenario, self.dags_dir, self._output)
        self._output.touch()
        self.hook_token_file.write_text(self.hook_token + "\n")
        self.hook_token_file.chmod(0o600)
        c = self.scenario.cluster
        assert self.postgres is not None and self.rabbit is not None
        self.airflow = AirflowStack(
            database_url=self.postgres.url,
            broker_url=self.rabbit.url,
            dags_folder=self.dags_dir,
            work_dir=self.work_dir / "airflow",
            venv=self._venv,
            flower=True,  # the Celery UI users look at; nothing in the harness reads it
            worker_concurrency=c.worker_concurrency,
            prefetch_multiplier=c.prefetch_multiplier,
            acks_late=c.acks_late,
            queue=QUEUE,
            extra_env={
                # Task events: the collector's load and the auditor's view of each worker.
                "AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": json.dumps(
                    {"worker_send_task_events": True}
                ),
                # The static scenarios/dags/dag_2.py writes here when it is used.
                "ELASTIC_AIRFLOW_OUTPUT": str(self.work_dir / "hi.txt"),
            },
        )
        self.progress("starting Airflow (db migrate, api-server, scheduler, dag-processor)")
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stack-kube") as pool:
            kube = pool.submit(self._timed("kubernetes-side", self._start_kube_side))
            try:
                self._timed("airflow", self.airflow.start)()
            except BaseException:
                _gather({"kubernetes-side": kube})
                raise
            errors = _gather({"kubernetes-side": kube})
        if errors:
            raise StackError("; ".join(f"{name}: {error}" for name, error in errors.items()))
        self.progress(
            f"Airflow up in {self.timings.get('airflow', 0):.0f} s "
            f"(migrate {self.airflow.migrate_seconds:.0f} s); waiting for the DAGs"
        )
        self.airflow_api().wait_for_dags(self.scenario.dags, timeout=180)
        self._wait_ready("the collector", self._collector_ready, _READY_TIMEOUT)

    def _start_kube_side(self) -> None:
        assert self.control_plane is not None
        self.node_agent = NodeAgent(
            self.control_plane.api_client(),
            workdir=self.work_dir / "pods",
            inherit_env=False,
            stop_timeout=_STOP_TIMEOUT,
        ).start()
        self._install_crds()
        self.operator_kubeconfig = self._operator_kubeconfig()
        self.prepare_namespace()
        self._start_hook()
        self._start_collector()
        self.start_operator()
        self._wait_ready("the drain hook", self._hook_ready, _READY_TIMEOUT)

    def _install_crds(self) -> None:
        try:
            install_crds(self.api_client(), CRD_DIR)
        except CRDError as error:
            raise StackError(str(error)) from None

    def _operator_kubeconfig(self) -> Path:
        """A user bound to the operator's ClusterRole alone (the admin's when no RBAC file)."""
        assert self.control_plane is not None
        if not RBAC_FILE.exists():
            self.rbac_source = "admin (no kind-config/operator/rbac.yaml)"
            return self.control_plane.kubeconfig_path
        rbac = k8s.RbacAuthorizationV1Api(self.api_client())
        roles = [d for d in load_documents(RBAC_FILE) if d.get("kind") == "ClusterRole"]
        if len(roles) != 1:
            raise StackError(f"{RBAC_FILE} must hold exactly one ClusterRole")
        role = roles[0]
        with contextlib.suppress(ApiException):
            rbac.create_cluster_role(role)
        self._bind(rbac, role["metadata"]["name"], OPERATOR_USER)
        # The collector lists and watches the worker pods (members by label), nothing else.
        collector_role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": COLLECTOR_USER},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}],
        }
        with contextlib.suppress(ApiException):
            rbac.create_cluster_role(collector_role)
        self._bind(rbac, COLLECTOR_USER, COLLECTOR_USER)
        self.rbac_source = str(RBAC_FILE.relative_to(REPO))
        return self.control_plane.kubeconfig_for(OPERATOR_USER)

    @staticmethod
    def _bind(rbac: k8s.RbacAuthorizationV1Api, role: str, user: str) -> None:
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{role}-{user}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }
        with contextlib.suppress(ApiException):
            rbac.create_cluster_role_binding(binding)

    def prepare_namespace(self) -> None:
        core = k8s.CoreV1Api(self.api_client())
        if self.namespace != "default":
            with contextlib.suppress(ApiException):
                core.create_namespace({"metadata": {"name": self.namespace}})
        secret = {"metadata": {"name": HOOK_SECRET}, "stringData": {"token": self.hook_token}}
        try:
            core.create_namespaced_secret(self.namespace, secret)
        except ApiException as error:
            if error.status != 409:
                raise

    # -- our Python services ---------------------------------------------------------------------

    def _spawn_python(self, name: str, module: str, args: list[str]) -> ManagedProcess:
        return spawn(
            name,
            [sys.executable, "-m", module, *args],
            log_path=self.logs_dir / f"{name}.log",
            env=_python_env(),
            cwd=REPO,
        )

    def _start_hook(self) -> None:
        assert self.rabbit is not None
        (self.hook_port,) = free_ports(1)
        self.hook = self._spawn_python(
            "hook",
            "controllers.hook",
            [
                "--broker-url", self.rabbit.url,
                "--queues", QUEUE,
                "--port", str(self.hook_port),
                "--bind", LOOPBACK,
                "--token-file", str(self.hook_token_file),
                "--timeout", str(HOOK_CALL_TIMEOUT),
            ],
        )  # fmt: skip

    def _start_collector(self) -> None:
        assert self.rabbit is not None and self.redis is not None
        assert self.control_plane is not None
        (self.collector_port,) = free_ports(1)
        kubeconfig = (
            self.control_plane.kubeconfig_for(COLLECTOR_USER)
            if RBAC_FILE.exists()
            else self.control_plane.kubeconfig_path
        )
        c = self.scenario.cluster
        self.collector = self._spawn_python(
            "collector",
            "controllers.metrics.collector",
            [
                "--broker-url", self.rabbit.url,
                "--redis-url", self.redis.url,
                "--namespace", self.namespace,
                "--elasticworker", self.elastic_worker,
                "--kubeconfig", str(kubeconfig),
                "--interval", f"{c.metrics_interval:g}",
                "--concurrency", str(c.worker_concurrency),
                "--queue", QUEUE,
                "--metrics-host", LOOPBACK,
                "--metrics-port", str(self.collector_port),
            ],
        )  # fmt: skip

    def start_operator(self) -> ManagedProcess:
        assert self.redis is not None and self.operator_kubeconfig is not None
        with self._lock:
            name = (
                "operator" if not self.operator_restarts else f"operator-{self.operator_restarts}"
            )
            self.operator = self._spawn_python(
                name,
                "controllers",
                [
                    "--kubeconfig", str(self.operator_kubeconfig),
                    "--namespace", self.namespace,
                    "--redis-url", self.redis.url,
                    "--sync-period", f"{self.scenario.cluster.sync_period:g}",
                ],
            )  # fmt: skip
            return self.operator

    def restart_operator(self, downtime: float) -> tuple[int, int]:
        """SIGKILL the operator by pid (no goodbye, like a node failure), wait, start anew."""
        with self._lock:
            old = self.operator
            self.operator_restarts += 1
            self._restarting = True
        assert old is not None
        try:
            with contextlib.suppress(ProcessLookupError):
                os.kill(old.pid, signal.SIGKILL)
            old.stop(_STOP_TIMEOUT)  # reaps it and anything left in its group
            if downtime > 0:
                time.sleep(downtime)
            new = self.start_operator()
        finally:
            with self._lock:
                self._restarting = False
        return old.pid, new.pid

    def _hook_ready(self) -> bool:
        return _http_ok(f"{self.hook_url}/readyz")

    def _collector_ready(self) -> bool:
        return _http_ok(f"http://{LOOPBACK}:{self.collector_port}/healthz")

    def _wait_ready(self, what: str, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise StackError(f"{what} not ready within {timeout:.0f} s{self._tails()}")
            time.sleep(0.2)

    # -- Cluster: what the runner deploys ---------------------------------------------------------

    def worker_template(self) -> dict[str, Any]:
        """One Airflow Celery worker per pod: `airflow celery worker --celery-hostname
        $(POD_NAME)`, the stack's settings in the container's env (the node agent starts pods
        from an empty environment, as a container starts from its image's)."""
        assert self.airflow is not None and self.airflow.venv is not None
        pylib = self.work_dir / "pylib"
        pylib.mkdir(exist_ok=True)
        (pylib / f"{HOSTNAME_MODULE}.py").write_text(
            '"""The pod name as Airflow\'s hostname (a pod\'s hostname is its name)."""\n'
            "import os\n\n\n"
            "def hostname():\n"
            '    return os.environ.get("POD_NAME") or os.uname().nodename\n'
        )
        venv = self.airflow.venv
        env: dict[str, str] = {**self.airflow.airflow_config(), **self.airflow.extra_env}
        env.update(
            PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            VIRTUAL_ENV=str(venv),
            PYTHONUNBUFFERED="1",
            PYTHONPATH=str(pylib),
            AIRFLOW__CORE__HOSTNAME_CALLABLE=f"{HOSTNAME_MODULE}.hostname",
        )
        for key in ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"):
            if os.environ.get(key):
                env[key] = os.environ[key]
        field = [
            {"name": name, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
            for name in ("POD_NAME", "ELASTIC_AIRFLOW_POD")
        ]
        container = {
            "name": "airflow-worker",
            # Never pulled here (the node agent runs the command); the image a cluster would run.
            "image": f"apache/airflow:{pinned_version('apache-airflow')}",
            "command": self.airflow.worker_command("$(POD_NAME)"),
            "env": field + [{"name": k, "value": v} for k, v in sorted(env.items())],
        }
        return {
            "metadata": {"labels": {"app": self.elastic_worker, "component": "airflow-worker"}},
            "spec": {
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": round(self.scenario.cluster.termination_grace),
                "containers": [container],
            },
        }

    def autoscaler_additions(self) -> dict[str, Any]:
        return {
            "shutdownHttpHook": self.hook_url,
            "hookTokenSecretRef": {"name": HOOK_SECRET, "key": "token"},
            "hookTimeoutSeconds": 2 * HOOK_CALL_TIMEOUT + 5,
        }

    # -- Cluster: audit ---------------------------------------------------------------------------

    def process_ends(self) -> dict[str, ProcessEnd]:
        if self.node_agent is None:
            return {}
        return {
            r.uid: ProcessEnd(r.sigterm_at, r.sigkill_at, r.finished_at, r.exit_code, r.restarts)
            for r in self.node_agent.pod_records()
        }

    def _sessions(self) -> dict[str, int]:
        sessions: dict[str, int] = {}
        for server in (self.postgres, self.rabbit, self.redis):
            if server is not None:
                for name, pid in server.pids().items():
                    sessions[f"{server.kind}:{name}"] = pid
        if self.control_plane is not None:
            sessions.update(self.control_plane.pids())
        if self.airflow is not None:
            sessions.update({f"airflow:{k}": v for k, v in self.airflow.pids().items()})
        for proc in (self.hook, self.collector, self.operator):
            if proc is not None and proc.alive:
                sessions[proc.name] = proc.pid
        if self.node_agent is not None:
            for i, pid in enumerate(self.node_agent.live_pids()):
                sessions[f"worker-pod-{i}"] = pid
        return sessions

    def pids(self) -> dict[str, int]:
        """Every process the stack runs now that leads a session (all it forked is in there),
        by name: servers, control plane, Airflow, hook, collector, operator, worker pods."""
        return self._sessions()

    def rss_bytes(self) -> dict[str, int]:
        out = _session_rss(self._sessions())
        out["harness (runner, auditor, node agent)"] = _own_rss()
        return out

    def check_alive(self) -> None:
        parts: list[tuple[str, ManagedProcess | None]] = [
            ("drain hook", self.hook),
            ("collector", self.collector),
        ]
        with self._lock:
            if not self._restarting:  # a restart kills it on purpose
                parts.append(("operator", self.operator))
        for what, proc in parts:
            if proc is not None and not proc.alive:
                raise StackError(
                    f"the {what} (pid {proc.pid}) exited with {proc.proc.returncode}; "
                    f"log {proc.log_path}:\n{proc.log_tail(3000)}"
                )
        if self.airflow is not None:
            self.airflow.check_alive()

    def log_files(self) -> dict[str, Path]:
        files = {p.stem: p for p in sorted(self.logs_dir.glob("*.log"))}
        if self.airflow is not None:
            files.update({f"airflow-{p.stem}": p for p in sorted(self.airflow.logs_dir.glob("*"))})
        if self.node_agent is not None:
            for record in self.node_agent.pod_records():
                files[f"pod-{record.name}"] = record.log_path
        return files

    def _tails(self) -> str:
        out = []
        for proc in (self.hook, self.collector, self.operator):
            if proc is not None:
                out.append(f"\n--- {proc.name} ({proc.log_path}) ---\n{proc.log_tail(2000)}")
        return "".join(out)

    # -- stop ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop everything by pid, last started first; errors are reported, not raised."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        steps: list[tuple[str, Callable[[], Any]]] = []
        for proc in (self.operator, self.collector, self.hook):
            if proc is not None:
                steps.append((proc.name, lambda p=proc: p.stop(_STOP_TIMEOUT)))
        if self.node_agent is not None:
            steps.append(("node agent and its pods", self.node_agent.stop))
        if self.airflow is not None:
            steps.append(("airflow", self.airflow.stop))
        if self._admin is not None:
            steps.append(("kubernetes client", self._admin.close))
        for name, server in (
            ("control plane", self.control_plane),
            ("redis", self.redis),
            ("rabbitmq", self.rabbit),
            ("postgres", self.postgres),
        ):
            if server is not None:
                steps.append((name, server.stop))
        for name, step in steps:
            try:
                step()
            except Exception as error:  # keep stopping the rest
                print(f"[e2e] stopping {name} failed: {error!r}", file=sys.stderr)


def _gather(futures: dict[str, Future[Any]]) -> dict[str, BaseException]:
    """Wait for every future (even after a Ctrl-C, so that nothing starts behind our back);
    return the errors by name."""
    errors: dict[str, BaseException] = {}
    interrupted: BaseException | None = None
    for name, future in futures.items():
        while True:
            try:
                future.result()
            except KeyboardInterrupt as error:
                if future.done():
                    errors[name] = error
                    break
                interrupted = error  # wait for the thread anyway, then re-raise
                continue
            except BaseException as error:
                errors[name] = error
            break
    if interrupted is not None:
        raise interrupted
    return errors
