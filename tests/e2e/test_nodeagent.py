"""The node agent runs pod commands as processes and honours graceful deletion."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubernetes import client

from harness.e2e.controlplane import LocalControlPlane
from harness.e2e.nodeagent import NodeAgent, PodRecord

from .helpers import pod_phase, process_gone, python_pod, read_pod, wait_for

pytestmark = pytest.mark.controlplane

WRITE_HOSTNAME = (
    "import os, pathlib; pathlib.Path(os.environ['OUT']).write_text(os.environ['HOSTNAME'])"
)

# Writes READY only once its handler is installed, so the test never signals
# a process that would still die of the default SIGTERM action.
TRAP_SIGTERM = """
import os, pathlib, signal, sys, time
def on_term(signum, frame):
    pathlib.Path(os.environ['OUT']).write_text('term')
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
pathlib.Path(os.environ['READY']).write_text('ready')
while True:
    time.sleep(0.1)
"""

IGNORE_SIGTERM = """
import os, pathlib, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path(os.environ['READY']).write_text('ready')
while True:
    time.sleep(0.1)
"""

# Fails on the first run, succeeds on the second: exercises OnFailure restarts.
FAIL_ONCE = """
import os, pathlib, sys
marker = pathlib.Path(os.environ['MARKER'])
if not marker.exists():
    marker.write_text('first run')
    sys.exit(3)
"""


def _create(core: client.CoreV1Api, namespace: str, manifest: dict[str, object]) -> None:
    core.create_namespaced_pod(namespace, manifest)


def _record(agent: NodeAgent, namespace: str, name: str) -> PodRecord:
    return wait_for(lambda: agent.record(namespace, name), what=f"record of {name}")


def _running_and_ready(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    pod = read_pod(core, namespace, name)
    if pod is None or pod.status is None or pod.status.phase != "Running":
        return False
    ready = [c for c in pod.status.conditions or [] if c.type == "Ready"]
    return bool(ready) and ready[0].status == "True"


def test_pod_runs_to_completion(
    node_agent: NodeAgent, core_v1: client.CoreV1Api, namespace: str, tmp_path: Path
) -> None:
    out = tmp_path / "hostname"
    _create(core_v1, namespace, python_pod("hello", WRITE_HOSTNAME, env={"OUT": str(out)}))

    wait_for(lambda: pod_phase(core_v1, namespace, "hello") == "Succeeded", what="Succeeded")

    assert out.read_text() == "hello"
    pod = core_v1.read_namespaced_pod("hello", namespace)
    assert pod.spec.node_name == "local"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    record = _record(node_agent, namespace, "hello")
    assert record.exit_code == 0
    assert all(process_gone(pid) for pid in record.pids)


def test_node_is_registered_ready(node_agent: NodeAgent, core_v1: client.CoreV1Api) -> None:
    node = core_v1.read_node(node_agent.node_name)
    ready = [c for c in node.status.conditions if c.type == "Ready"]
    assert ready and ready[0].status == "True"


def test_failed_pod_restarts_on_failure_then_succeeds(
    node_agent: NodeAgent, core_v1: client.CoreV1Api, namespace: str, tmp_path: Path
) -> None:
    manifest = python_pod(
        "flaky", FAIL_ONCE, env={"MARKER": str(tmp_path / "m")}, restart_policy="OnFailure"
    )
    _create(core_v1, namespace, manifest)

    wait_for(lambda: pod_phase(core_v1, namespace, "flaky") == "Succeeded", what="Succeeded")

    record = _record(node_agent, namespace, "flaky")
    assert record.exit_codes == [3, 0]
    assert record.restarts == 1
    status = core_v1.read_namespaced_pod("flaky", namespace).status.container_statuses[0]
    assert status.restart_count == 1
    assert status.last_state.terminated.exit_code == 3


def test_delete_sends_sigterm_and_removes_the_pod(
    node_agent: NodeAgent, core_v1: client.CoreV1Api, namespace: str, tmp_path: Path
) -> None:
    out, ready = tmp_path / "out", tmp_path / "ready"
    manifest = python_pod(
        "trapper", TRAP_SIGTERM, env={"OUT": str(out), "READY": str(ready)}, grace_seconds=20
    )
    _create(core_v1, namespace, manifest)
    wait_for(lambda: _running_and_ready(core_v1, namespace, "trapper"), what="Running and Ready")
    wait_for(ready.exists, what="SIGTERM handler installed")
    pod = core_v1.read_namespaced_pod("trapper", namespace)
    assert pod.status.pod_ip == "127.0.0.1"

    core_v1.delete_namespaced_pod("trapper", namespace)
    wait_for(lambda: read_pod(core_v1, namespace, "trapper") is None, what="pod gone")

    assert out.read_text() == "term"
    record = _record(node_agent, namespace, "trapper")
    assert record.sigterm_at is not None
    assert record.sigkill_at is None
    assert record.exit_code == 0
    assert record.deleted_at is not None
    assert all(process_gone(pid) for pid in record.pids)


def test_sigterm_ignored_means_sigkill_after_grace(
    node_agent: NodeAgent, core_v1: client.CoreV1Api, namespace: str, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    manifest = python_pod("stubborn", IGNORE_SIGTERM, env={"READY": str(ready)}, grace_seconds=2)
    _create(core_v1, namespace, manifest)
    wait_for(ready.exists, what="SIGTERM ignored")

    core_v1.delete_namespaced_pod("stubborn", namespace)
    wait_for(lambda: read_pod(core_v1, namespace, "stubborn") is None, what="pod gone")

    record = _record(node_agent, namespace, "stubborn")
    assert record.sigterm_at is not None and record.sigkill_at is not None
    assert 1.8 <= record.sigkill_at - record.sigterm_at <= 5.0
    assert record.exit_code == 137
    assert all(process_gone(pid) for pid in record.pids)


def test_other_schedulers_pods_are_left_alone(
    node_agent: NodeAgent, core_v1: client.CoreV1Api, namespace: str
) -> None:
    manifest = python_pod("elsewhere", "pass", scheduler_name="someone-else")
    _create(core_v1, namespace, manifest)
    time.sleep(1.5)
    pod = core_v1.read_namespaced_pod("elsewhere", namespace)
    assert not pod.spec.node_name
    assert node_agent.record(namespace, "elsewhere") is None


def test_stopping_the_agent_ends_its_processes(
    control_plane: LocalControlPlane, core_v1: client.CoreV1Api, namespace: str, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    # Pre-bound to a node of its own, so the session's agent never touches it.
    manifest = python_pod(
        "orphan",
        TRAP_SIGTERM,
        env={"OUT": str(tmp_path / "out"), "READY": str(ready)},
        node_name="stop-test",
    )
    agent = NodeAgent(control_plane.api_client(), node_name="stop-test", stop_timeout=3).start()
    try:
        _create(core_v1, namespace, manifest)
        wait_for(ready.exists, what="process started")
        pids = agent.live_pids()
        assert len(pids) == 1
    finally:
        agent.stop()

    assert process_gone(pids[0])
    record = agent.record(namespace, "orphan")
    assert record is not None and record.sigterm_at is not None
    assert (tmp_path / "out").read_text() == "term"
