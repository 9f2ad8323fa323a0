"""The drain protocol carried out by the operator on real pods, with a hook stand-in that speaks
the hook's HTTP contract (the Celery-backed hook is exercised in test_drain_celery.py)."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from e2e.helpers import wait_for
from kubernetes import client

from controllers.core.types import Reading
from controllers.kube.views import DRAIN_REPORT_ANNOTATION, DRAIN_STEP_ANNOTATION
from controllers.metrics.store import MetricStore, cluster_key, pod_key

from .fakehook import TOKEN, FakeHook
from .helpers import autoscaler, condition, create, elastic_worker, get_ewa, live_pods

pytestmark = pytest.mark.controlplane


class Load:
    """Keeps fresh readings in Redis: the cluster load and a per-pod load of 0 for every pod."""

    def __init__(self, url: str, core: client.CoreV1Api, namespace: str, ew: str) -> None:
        self.store = MetricStore(redis.Redis.from_url(url), ttl=30)
        self.core, self.namespace, self.ew = core, namespace, ew
        self.cluster = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            now = time.time()
            pods = [p.metadata.name for p in live_pods(self.core, self.namespace, self.ew)]
            key = cluster_key(self.namespace, self.ew, "total_cluster_load")
            self.store.put(key, Reading(self.cluster, now, workers=len(pods)))
            for pod in pods:
                self.store.put(pod_key(self.namespace, pod, "load"), Reading(0, now))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def hook(core_v1: client.CoreV1Api, namespace: str) -> Iterator[FakeHook]:
    core_v1.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "hook-token"},
            "data": {"token": base64.b64encode(TOKEN.encode()).decode()},
        },
    )
    fake = FakeHook(core_v1, namespace).start()
    yield fake
    fake.stop()


def step(core: client.CoreV1Api, namespace: str, pod: str) -> str | None:
    try:
        meta = core.read_namespaced_pod(pod, namespace).metadata
    except client.ApiException:
        return None
    return (meta.annotations or {}).get(DRAIN_STEP_ANNOTATION)


def names(core: client.CoreV1Api, namespace: str, ew: str) -> list[str]:
    return sorted(p.metadata.name for p in live_pods(core, namespace, ew))


def drain_setup(custom, core, namespace, hook: FakeHook) -> None:
    create(custom, namespace, elastic_worker("d", min_replicas=1, max_replicas=3, replicas=3))
    wait_for(lambda: len(names(core, namespace, "d")) == 3, 30, what="three pods")
    wait_for(
        lambda: all(p.status.phase == "Running" for p in live_pods(core, namespace, "d")),
        30,
        what="three running pods",
    )
    body = autoscaler("d-scaler", "d", target_value=60, back_off=1, hook=hook.url)
    body["spec"]["scaleInSpec"]["hookTokenSecretRef"] = {"name": "hook-token"}
    create(custom, namespace, body)


def test_drains_idle_only_keeps_a_busy_worker_and_resumes_after_restart(
    start_operator, custom, core_v1, node_agent, namespace, redis_server, hook
) -> None:
    hook.busy_first_cordoned = True  # a task reached one worker between the reading and cordon
    operator = start_operator("--redis-url", redis_server.url, "--sync-period", "1")
    with Load(redis_server.url, core_v1, namespace, "d"):
        drain_setup(custom, core_v1, namespace, hook)
        wait_for(lambda: len(hook.cordoned()) >= 2, 30, what="two workers cordoned")
        first = hook.calls_to("/shutdownpods")[0]
        # Recorded on the pod before the hook was asked.
        assert all(s == "cordon-requested" for s in first.steps.values()), first.steps
        busy = next(iter(hook.busy))
        idle = next(p for p in hook.cordoned() if p != busy)

        wait_for(lambda: idle not in names(core_v1, namespace, "d"), 30, what="idle one deleted")
        assert busy in names(core_v1, namespace, "d")
        assert step(core_v1, namespace, busy) == "cordoned"
        # Verified again and again, never marked while it holds a task.
        verifies = len(hook.calls_to("/inspectpods"))
        wait_for(lambda: len(hook.calls_to("/inspectpods")) >= verifies + 2, 15, what="verify")
        assert step(core_v1, namespace, busy) == "cordoned"
        pod = core_v1.read_namespaced_pod(busy, namespace)
        assert '"active": 1' in pod.metadata.annotations[DRAIN_REPORT_ANNOTATION]
        assert "delete" not in (pod.metadata.labels or {})
        status = get_ewa(custom, namespace, "d-scaler")["status"]
        [entry] = [e for e in status["draining"] if e["pod"] == busy]
        assert entry["step"] == "cordoned" and entry["active"] == 1
        assert condition({"status": status}, "Draining")["status"] == "True"
        assert status["desiredReplicas"] == 1

        # The operator dies mid-drain; a new one resumes from what the pod says.
        operator.kill()
        restarted = start_operator("--redis-url", redis_server.url, "--sync-period", "1")
        time.sleep(3)
        assert busy in names(core_v1, namespace, "d")
        with hook.lock:
            hook.busy.clear()  # its task finished
        wait_for(lambda: busy not in names(core_v1, namespace, "d"), 30, what="busy one gone")
        assert len(names(core_v1, namespace, "d")) == 1
        assert restarted.alive()
    # Every deleted pod was reported idle after its cordon by the hook.
    for call in hook.calls:
        assert call.path in ("/shutdownpods", "/inspectpods")


def test_undo_puts_a_cordoned_worker_back_before_adding_pods(
    start_operator, custom, core_v1, node_agent, namespace, redis_server, hook
) -> None:
    hook.busy_first_cordoned = True
    start_operator("--redis-url", redis_server.url, "--sync-period", "1")
    with Load(redis_server.url, core_v1, namespace, "d") as load:
        drain_setup(custom, core_v1, namespace, hook)
        wait_for(lambda: hook.busy and len(names(core_v1, namespace, "d")) == 2, 40, what="drain")
        busy = next(iter(hook.busy))
        assert step(core_v1, namespace, busy) == "cordoned"

        load.cluster = 100.0  # load comes back: ceil(2 * 100 / 60) = 4, clamped to 3
        wait_for(lambda: hook.calls_to("/restorepods"), 20, what="the uncordon")
        restore = hook.calls_to("/restorepods")[0]
        assert restore.pods == [busy]
        assert restore.steps[busy] == "uncordon-requested"  # recorded first
        wait_for(lambda: step(core_v1, namespace, busy) == "serving", 20, what="serving again")
        wait_for(lambda: len(names(core_v1, namespace, "d")) == 3, 30, what="three pods")
        assert busy in names(core_v1, namespace, "d")


def test_hook_failure_leaves_the_step_for_the_next_sync(
    start_operator, custom, core_v1, node_agent, namespace, redis_server, hook
) -> None:
    hook.failing = True
    start_operator("--redis-url", redis_server.url, "--sync-period", "1")
    with Load(redis_server.url, core_v1, namespace, "d"):
        drain_setup(custom, core_v1, namespace, hook)
        wait_for(lambda: len(hook.calls_to("/shutdownpods")) >= 3, 30, what="cordon retried")
        pods = names(core_v1, namespace, "d")
        assert len(pods) == 3  # nothing deleted while the hook is down
        requested = [p for p in pods if step(core_v1, namespace, p) == "cordon-requested"]
        assert len(requested) == 2
        draining = get_ewa(custom, namespace, "d-scaler")["status"]
        assert "hook cordon failed" in condition({"status": draining}, "Draining")["message"]
        hook.failing = False
        wait_for(lambda: len(names(core_v1, namespace, "d")) == 1, 30, what="drained to 1")


def test_a_worker_consuming_again_is_cordoned_again_never_marked(
    start_operator, custom, core_v1, node_agent, namespace, redis_server, hook
) -> None:
    hook.busy_first_cordoned = True
    start_operator("--redis-url", redis_server.url, "--sync-period", "1")
    with Load(redis_server.url, core_v1, namespace, "d"):
        drain_setup(custom, core_v1, namespace, hook)
        wait_for(lambda: hook.busy and len(names(core_v1, namespace, "d")) == 2, 40, what="drain")
        busy = next(iter(hook.busy))
        cordons = hook.cordoned().count(busy)
        with hook.lock:
            hook.busy.clear()
            hook.restarted.add(busy)  # restarted: idle, but consuming again
        wait_for(lambda: hook.cordoned().count(busy) > cordons, 20, what="a second cordon")
        recordon = [c for c in hook.calls_to("/shutdownpods") if busy in c.pods][-1]
        assert recordon.steps[busy] == "cordon-requested"
        # Marked only on the report of that new cordon (taken while it consumed nothing).
        wait_for(lambda: len(names(core_v1, namespace, "d")) == 1, 30, what="then drained")
