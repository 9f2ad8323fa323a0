"""Fixtures for the operator tests: a real kube-apiserver, the node agent, the CRDs, the
operator's ClusterRole, and the operator itself as a subprocess (`python -m controllers`) that
authenticates as a user bound to that ClusterRole only, so the RBAC manifest is tested too.

The control-plane fixtures are the ones of `tests/e2e/conftest.py`.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e.conftest import admin_client, control_plane, core_v1, namespace, node_agent
from kubernetes import client
from kubernetes.client.rest import ApiException

from harness.e2e.controlplane import LocalControlPlane
from harness.e2e.crds import install_crds, load_documents

__all__ = ["admin_client", "control_plane", "core_v1", "namespace", "node_agent"]

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "kind-config" / "crds"
RBAC = REPO / "kind-config" / "operator" / "rbac.yaml"
ROLE_NAME = "elastic-airflow-operator"

_ids = itertools.count()


@pytest.fixture(scope="session")
def crds(admin_client: client.ApiClient) -> list[str]:
    """The project's CRDs, installed from kind-config/crds and served."""
    return install_crds(admin_client, CRDS)


@pytest.fixture(scope="session")
def operator_role(admin_client: client.ApiClient) -> dict[str, Any]:
    """The ClusterRole of kind-config/operator/rbac.yaml, created as it is written."""
    docs = [d for d in load_documents(RBAC) if d["kind"] == "ClusterRole"]
    assert len(docs) == 1, f"{RBAC} must hold exactly one ClusterRole"
    role = docs[0]
    assert role["metadata"]["name"] == ROLE_NAME
    try:
        client.RbacAuthorizationV1Api(admin_client).create_cluster_role(role)
    except ApiException as error:
        if error.status != 409:
            raise
    return role


@pytest.fixture
def operator_kubeconfig(
    control_plane: LocalControlPlane,
    admin_client: client.ApiClient,
    operator_role: dict[str, Any],
    namespace: str,
) -> Path:
    """A kubeconfig for a user that holds the operator's ClusterRole and nothing else."""
    user = f"operator-{namespace}"
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{ROLE_NAME}-{namespace}"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": ROLE_NAME,
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    client.RbacAuthorizationV1Api(admin_client).create_cluster_role_binding(binding)
    return control_plane.kubeconfig_for(user)


@dataclass
class OperatorProcess:
    """`python -m controllers` as a child process; its log is a file."""

    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] = field(init=False)

    def start(self) -> OperatorProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "controllers", *self.argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=env,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


OperatorFactory = Callable[..., OperatorProcess]


@pytest.fixture
def start_operator(
    crds: list[str],
    operator_kubeconfig: Path,
    namespace: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[OperatorFactory]:
    """Start operators for this test's namespace: `start_operator("--sync-period", "1")`.
    Each is stopped by its pid at the end; their logs are printed when the test fails."""
    started: list[OperatorProcess] = []

    def start(*extra: str) -> OperatorProcess:
        log_path = tmp_path / f"operator-{next(_ids)}.log"
        argv = ["--kubeconfig", str(operator_kubeconfig), "--namespace", namespace, *extra]
        operator = OperatorProcess(argv, log_path).start()
        started.append(operator)
        return operator

    yield start
    for operator in started:
        operator.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for operator in started:
            sys.stderr.write(
                f"\n--- operator log {operator.log_path} ---\n{operator.log()[-8000:]}"
            )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def custom(admin_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(admin_client)
