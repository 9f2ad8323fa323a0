"""Where an end-to-end run happens: the cluster providers of `elastic-airflow e2e --cluster P`.

A provider brings up a cluster with everything a scenario needs (broker, metrics store, Airflow,
the drain hook, the metrics collector, the operator and its CRDs) and hands the runner a
`Cluster`: the handles the runner and the independent auditor use. Providers:

- `local`: every piece as a private process on 127.0.0.1 (no Docker): PostgreSQL, RabbitMQ,
  Redis, etcd + kube-apiserver with the node agent running pods as local processes, real
  Airflow 3 (CeleryExecutor), the hook, the collector and the operator
  (`harness.e2e.stack.LocalStack`).
- `kind`, `minikube`, `existing`: `harness.e2e.kube_providers` (images built and loaded, the
  manifests of `kind-config/` applied); `ProviderUnavailable` says what is missing. Should that
  module be absent, they say that they are not implemented. A provider implements
  `ClusterProvider.open()` returning a `Cluster` (the abstract methods: the runner needs
  nothing else).
- `auto`: `kind` when `docker info` works and `kind` is on PATH, else `local`.
"""

from __future__ import annotations

import abc
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from harness.e2e.airflow_api import AirflowAPI
    from harness.scenario import Scenario

PROVIDERS = ("auto", "kind", "minikube", "existing", "local")
_DOCKER_INFO_TIMEOUT = 20.0

Progress = Callable[[str], None]


class ProviderUnavailable(RuntimeError):
    """The chosen provider cannot run here; the message says why and what to use instead."""


@dataclass(frozen=True)
class ProcessEnd:
    """How a pod's process ended, as the node (kubelet / node agent) saw it. Times: epoch s."""

    sigterm_at: float | None
    sigkill_at: float | None
    finished_at: float | None
    exit_code: int | None
    restarts: int

    @property
    def ended_by(self) -> str:
        """`SIGKILL`, `SIGTERM` (ended after the SIGTERM, by itself), `exit`, or `running`."""
        if self.sigkill_at is not None or self.exit_code == 137:
            return "SIGKILL"
        if self.finished_at is None:
            return "running"
        if self.sigterm_at is not None:
            return "SIGTERM"
        return "exit"


class Cluster(abc.ABC):
    """A running cluster with the scenario's stack deployed; what the runner and auditor use."""

    provider: str = "?"
    namespace: str = "default"
    #: Seconds from the first process started until everything answered.
    startup_seconds: float = 0.0

    # -- endpoints ---------------------------------------------------------------------------
    @abc.abstractmethod
    def api_client(self) -> ApiClient:
        """A Kubernetes client with full rights (the auditor's and the runner's)."""

    @property
    @abc.abstractmethod
    def broker_url(self) -> str:
        """The Celery broker as the harness reaches it (the auditor's own connection)."""

    @property
    @abc.abstractmethod
    def redis_url(self) -> str | None:
        """Where the collector publishes the load (None: not readable from the harness)."""

    @property
    @abc.abstractmethod
    def queue(self) -> str:
        """The Celery queue the workers consume."""

    @abc.abstractmethod
    def airflow_api(self) -> AirflowAPI:
        """A logged-in REST client of the Airflow api-server."""

    @property
    @abc.abstractmethod
    def output_file(self) -> Path:
        """The file the scenario's DAG tasks append their JSON lines to."""

    # -- what the runner deploys ---------------------------------------------------------------
    @abc.abstractmethod
    def worker_template(self) -> dict[str, Any]:
        """The ElasticWorker's pod template (metadata + spec) running one Airflow Celery worker
        per pod, named by the pod."""

    @abc.abstractmethod
    def autoscaler_additions(self) -> dict[str, Any]:
        """`scaleInSpec` fields that wire the autoscaler to this cluster's hook (URL, token)."""

    @abc.abstractmethod
    def prepare_namespace(self) -> None:
        """Create what the resources refer to in `namespace` (the hook token Secret...)."""

    # -- faults and audit ----------------------------------------------------------------------
    @abc.abstractmethod
    def restart_operator(self, downtime: float) -> tuple[int, int]:
        """SIGKILL the operator, wait `downtime` s, start a new one; (old pid, new pid)."""

    @abc.abstractmethod
    def process_ends(self) -> dict[str, ProcessEnd]:
        """How each pod's process ended, by pod uid (empty when the provider cannot tell)."""

    @abc.abstractmethod
    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of every part of the stack now, by part (workers included)."""

    def pids(self) -> dict[str, int]:
        """Local processes of the stack by name (each leads its session); empty when the stack
        does not run on this machine."""
        return {}

    @abc.abstractmethod
    def check_alive(self) -> None:
        """Raise RuntimeError naming the part when a component of the stack has died."""

    @abc.abstractmethod
    def log_files(self) -> dict[str, Path]:
        """The components' log files, by name (copied next to the report)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop everything by pid; safe to call twice."""

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ClusterProvider(abc.ABC):
    name: str = "?"

    @abc.abstractmethod
    def open(self, scenario: Scenario, work_dir: Path, progress: Progress) -> Cluster:
        """Bring the cluster and the stack up for `scenario`; the caller closes it."""


class LocalProvider(ClusterProvider):
    name = "local"

    def open(self, scenario: Scenario, work_dir: Path, progress: Progress) -> Cluster:
        from harness.e2e.stack import LocalStack

        stack = LocalStack(scenario, work_dir, progress=progress)
        stack.start()
        return stack


class _NotYet(ClusterProvider):
    """A provider that is planned but not written; it says so before anything starts."""

    def __init__(self, name: str, needs: str) -> None:
        self.name = name
        self.needs = needs

    def check(self) -> None:
        raise ProviderUnavailable(
            f"--cluster {self.name}: this provider is not implemented yet (it will need "
            f"{self.needs}); harness/e2e/providers.py has the interface to implement. "
            "Use --cluster local meanwhile."
        )

    def open(self, scenario: Scenario, work_dir: Path, progress: Progress) -> Cluster:
        self.check()
        raise AssertionError("unreachable")


def docker_works(timeout: float = _DOCKER_INFO_TIMEOUT) -> bool:
    """`docker info` answers (a daemon we may use), within `timeout`."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run(
            [docker, "info"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def resolve(name: str) -> str:
    """The provider `auto` stands for here; other names as given."""
    if name not in PROVIDERS:
        raise ProviderUnavailable(f"--cluster: unknown provider {name!r}; one of {PROVIDERS}")
    if name != "auto":
        return name
    return "kind" if shutil.which("kind") and docker_works() else "local"


def get_provider(name: str) -> ClusterProvider:
    """The provider for `name` (after `resolve`); `ProviderUnavailable` when it cannot run."""
    name = resolve(name)
    if name == "local":
        return LocalProvider()
    try:
        from harness.e2e.kube_providers import make_provider
    except ImportError:
        pass
    else:
        return make_provider(name)  # raises ProviderUnavailable naming what is missing
    needs = {
        "kind": "Docker and `kind`, images of the operator and Airflow loaded into the cluster",
        "minikube": "a running minikube and images built into its Docker daemon",
        "existing": "a kubeconfig of a cluster where the CRDs, RBAC and images can be deployed",
    }[name]
    provider = _NotYet(name, needs)
    provider.check()
    return provider
