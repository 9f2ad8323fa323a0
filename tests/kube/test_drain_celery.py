"""The full drain with real Celery workers in pods, the real drain hook and a private RabbitMQ.

The per-pod metrics are made to lie: every worker reads as idle (load 0, fresh) while two of
them run a task. That is the race the protocol exists for (a task reaching a worker between the
idle reading and the cordon), made certain: the hook's cordon reports the task, the worker stays
cordoned until it finished, and only then is its pod marked and deleted. The operator is killed
mid-drain and a new one resumes from what the pods record.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.helpers import wait_for
from kubernetes import client

from harness.e2e.tinyapp import WORK_TASK, make_app, worker_argv
from harness.services import free_port

from .conftest import REPO
from .fakehook import TOKEN
from .helpers import autoscaler, create, elastic_worker, live_pods
from .test_drain import Load, names, step

pytestmark = pytest.mark.controlplane

TASK_SECONDS = 20


@pytest.fixture
def drain_hook(rabbitmq_server, tmp_path: Path) -> Iterator[str]:
    """`python -m controllers.hook` against the private broker; yields its URL."""
    port = free_port()
    env = dict(os.environ, HOOK_TOKEN=TOKEN, PYTHONPATH=str(REPO))
    log = open(tmp_path / "hook.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "controllers.hook", "--broker-url", rabbitmq_server.url,
         "--port", str(port), "--timeout", "3"],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url), 30, what="the drain hook")
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def _healthy(url: str) -> bool:
    from controllers.hook.client import HookClient

    return HookClient(url, TOKEN, timeout=2).healthy()


def celery_worker_set(broker_url: str) -> dict:
    body = elastic_worker("d", min_replicas=1, max_replicas=3, replicas=3)
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["command"] = worker_argv("$(POD_NAME)", concurrency=1)
    container["env"] = [
        {"name": "BROKER_URL", "value": broker_url},
        {"name": "PYTHONPATH", "value": str(REPO)},
        {"name": "TINYAPP_PREFETCH", "value": "1"},
    ]
    body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
    return body


def test_celery_drain_never_deletes_a_busy_worker_and_survives_a_restart(
    start_operator,
    custom,
    core_v1: client.CoreV1Api,
    node_agent,
    namespace,
    redis_server,
    rabbitmq_server,
    drain_hook,
    tmp_path: Path,
) -> None:
    core_v1.create_namespaced_secret(
        namespace, {"metadata": {"name": "hook-token"}, "stringData": {"token": TOKEN}}
    )
    app = make_app(rabbitmq_server.url)
    out = tmp_path / "tasks.txt"
    operator = start_operator("--redis-url", redis_server.url, "--sync-period", "1")
    create(custom, namespace, celery_worker_set(rabbitmq_server.url))
    nodes = {f"celery@d-{i}" for i in range(3)}
    wait_for(
        lambda: nodes <= {n for r in app.control.ping(timeout=1.0) or [] for n in r},
        90,
        interval=1,
        what="three Celery workers answering",
    )
    for _ in range(2):
        app.send_task(WORK_TASK, (TASK_SECONDS, str(out)), queue="default")

    def busy_nodes() -> set[str]:
        active = app.control.inspect(timeout=1.0).active() or {}
        return {node for node, tasks in active.items() if tasks}

    busy = wait_for(lambda: len(b := busy_nodes()) == 2 and b, 30, what="two busy workers")
    busy_pods = {n.removeprefix("celery@") for n in busy}
    tasks_sent = time.time()

    with Load(redis_server.url, core_v1, namespace, "d"):  # every worker "idle", cluster load 0
        body = autoscaler("d-scaler", "d", target_value=60, back_off=1, hook=drain_hook)
        body["spec"]["scaleInSpec"]["hookTokenSecretRef"] = {"name": "hook-token"}
        create(custom, namespace, body)

        # At least one busy worker is among the two cordoned: it stays cordoned, not marked.
        held = wait_for(
            lambda: [p for p in busy_pods if step(core_v1, namespace, p) == "cordoned"],
            30,
            what="a busy worker cordoned",
        )
        pod = core_v1.read_namespaced_pod(held[0], namespace)
        assert "delete" not in (pod.metadata.labels or {})

        # The operator dies mid-drain; a new one resumes.
        operator.kill()
        start_operator("--redis-url", redis_server.url, "--sync-period", "1")
        assert time.time() - tasks_sent < TASK_SECONDS - 2, "the restart came after the tasks"

        wait_for(lambda: len(names(core_v1, namespace, "d")) == 1, 90, what="drained to one")
        wait_for(lambda: len(out.read_text().splitlines()) == 2 if out.exists() else False, 30)
        wait_for(lambda: len(live_pods(core_v1, namespace, "d")) == 1, 30, what="one pod")

    # No pod was asked to stop while its worker held a task, and no task was lost or killed.
    lines = [line.split() for line in out.read_text().splitlines()]
    assert {node for node, *_ in lines} == busy
    for node, _task, _started, finished in lines:
        record = node_agent.record(namespace, node.removeprefix("celery@"))
        assert record is not None
        assert record.sigterm_at is None or record.sigterm_at >= float(finished), (
            f"{node} got SIGTERM at {record.sigterm_at} before its task finished at {finished}"
        )
    for pod_name in [f"d-{i}" for i in range(3)]:
        record = node_agent.record(namespace, pod_name)
        assert record is not None and record.sigkill_at is None, f"{pod_name} was SIGKILLed"
