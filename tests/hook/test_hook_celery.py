"""The drain hook against a private RabbitMQ and real Celery worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controllers.hook.client import HookClient, PodReply
from controllers.hook.drain import CeleryDrainer
from controllers.hook.server import HookServer, TokenSource
from harness.e2e.tinyapp import TinyWorker, read_lines
from harness.services import free_port, pid_alive

pytestmark = pytest.mark.services

TOKEN = "test-token-123"  # the `hook` fixture's
HOOK_TIMEOUT = 1.0


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def queue_depth(broker_url: str, queue: str) -> tuple[int, int]:
    """(ready messages, consumers) of `queue`, as the broker counts them."""
    from kombu import Connection

    with Connection(broker_url, connect_timeout=5) as connection:
        _, messages, consumers = connection.default_channel.queue_declare(queue=queue, passive=True)
        return messages, consumers


def busy(client: HookClient, pod: str, active: int, reserved: int = 0) -> PodReply | None:
    reply = client.inspect([pod])[pod]
    return reply if (reply.active, reply.reserved) == (active, reserved) else None


def test_cordon_idle_worker_takes_no_new_task(
    client: HookClient, start_worker, send, out: Path, broker_url: str, queue: str
) -> None:
    a = start_worker()
    before = time.time()
    reply = client.cordon([a.name])[a.name]
    assert reply.acknowledged and reply.error is None
    assert (reply.active, reply.reserved, reply.consuming) == (0, 0, ())
    assert reply.at is not None and before <= reply.at <= time.time()
    assert reply.to_report() is not None and reply.to_report().empty

    task_id = send(0.2)
    time.sleep(2.0)  # A had every chance to take it
    assert read_lines(out) == []
    assert queue_depth(broker_url, queue) == (1, 0)  # still queued, nobody consuming
    assert client.inspect([a.name])[a.name].to_report().empty

    b = start_worker()
    wait_for(lambda: read_lines(out), 15, "the second worker to run the task")
    assert read_lines(out) == [(b.nodename, task_id)]
    assert client.inspect([a.name])[a.name].to_report().empty


def test_cordon_busy_worker_then_inspect_until_idle(
    client: HookClient, start_worker, send, out: Path
) -> None:
    a = start_worker()
    task_id = send(5)
    wait_for(lambda: busy(client, a.name, active=1), 10, "the task to start")

    reply = client.cordon([a.name])[a.name]
    assert reply.acknowledged and reply.consuming == ()
    assert (reply.active, reply.reserved) == (1, 0)
    assert not reply.to_report().empty

    # Verify again until the worker reports idle: the task finished, on A.
    idle = wait_for(lambda: busy(client, a.name, active=0), 15, "the task to finish")
    assert idle.to_report().empty and idle.at > reply.at
    assert read_lines(out) == [(a.nodename, task_id)]


def test_restore_puts_the_worker_back(client: HookClient, start_worker, send, out: Path) -> None:
    a = start_worker()
    assert client.cordon([a.name])[a.name].cordoned
    restored = client.restore([a.name])[a.name]
    assert restored.acknowledged and restored.error is None
    assert restored.consuming == (a.queues[0],)
    assert restored.to_report() is None  # a serving worker's report never allows a mark

    task_id = send(0.1)
    wait_for(lambda: read_lines(out), 10, "the restored worker to take the task")
    assert read_lines(out) == [(a.nodename, task_id)]
    # Restoring twice is harmless; a second cordon works again.
    assert client.restore([a.name])[a.name].consuming == (a.queues[0],)
    assert client.cordon([a.name])[a.name].cordoned


def test_unknown_pod_answered_per_pod(client: HookClient, start_worker) -> None:
    a = start_worker()
    started = time.monotonic()
    replies = client.cordon([a.name, "no-such-pod"])
    took = time.monotonic() - started
    assert replies[a.name].cordoned and replies[a.name].to_report().empty
    unknown = replies["no-such-pod"]
    assert not unknown.acknowledged
    assert unknown.error == "no reply from celery@no-such-pod"
    assert unknown.to_report() is None
    assert took < 4 * HOOK_TIMEOUT + 2  # one timeout for the unknown pod, not one per call

    inspected = client.inspect(["no-such-pod"])["no-such-pod"]
    assert not inspected.acknowledged and "no-such-pod" in (inspected.error or "")
    restored = client.restore(["no-such-pod"])["no-such-pod"]
    assert not restored.acknowledged and restored.error == "no reply from celery@no-such-pod"


def test_prefetched_task_stays_reserved_and_still_runs(
    client: HookClient, start_worker, send, out: Path, broker_url: str, queue: str
) -> None:
    """Celery issue 2564: a prefetched message stays on the worker after cancel_consumer."""
    a = start_worker(concurrency=1, prefetch_multiplier=2)
    first, second = send(3), send(3)
    wait_for(lambda: busy(client, a.name, active=1, reserved=1), 10, "one active + one reserved")

    reply = client.cordon([a.name])[a.name]
    assert reply.acknowledged and reply.consuming == ()
    assert (reply.active, reply.reserved) == (1, 1)
    assert not reply.to_report().empty
    # Not handed back to the queue: the worker still holds it.
    assert queue_depth(broker_url, queue) == (0, 0)

    wait_for(lambda: busy(client, a.name, active=0), 20, "both tasks to finish")
    assert sorted(read_lines(out)) == sorted([(a.nodename, first), (a.nodename, second)])


def test_two_queues_are_both_cancelled(broker_url: str, queue: str, start_worker) -> None:
    other = f"{queue}-b"
    drainer = CeleryDrainer(broker_url, [queue, other], timeout=HOOK_TIMEOUT)
    try:
        a = start_worker(queues=(queue, other))
        answer = drainer.cordon([a.name])[a.name]
        assert answer["acknowledged"] and answer["consuming"] == [] and "error" not in answer
        assert a.consuming() == []
        answer = drainer.restore([a.name])[a.name]
        assert answer == {"acknowledged": True, "consuming": [queue, other]}
    finally:
        drainer.close()


def test_restarted_worker_is_not_trusted(client: HookClient, start_worker, queue: str) -> None:
    """A worker that consumes again after its cordon (container restart) yields no report."""
    a = start_worker()
    assert client.cordon([a.name])[a.name].cordoned
    a.kill()
    again = start_worker(a.name)
    reply = client.inspect([again.name])[again.name]
    assert reply.acknowledged and reply.consuming == (queue,)
    assert (reply.active, reply.reserved) == (0, 0)
    assert reply.to_report() is None


def test_legacy_path_cordons_like_shutdownpods(hook: HookServer, start_worker) -> None:
    a = start_worker()
    request = urllib.request.Request(
        hook.url + "/api/worker/shutdown",
        json.dumps({"shutdown_workers": [a.name]}).encode(),
        {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        body = json.load(response)
    answer = body["workers"][a.name]
    assert answer["acknowledged"] is True and answer["consuming"] == []
    assert (answer["active"], answer["reserved"]) == (0, 0)
    assert a.consuming() == []


def test_unreachable_broker_is_answered_per_pod() -> None:
    drainer = CeleryDrainer(f"amqp://guest:guest@127.0.0.1:{free_port()}//", ["default"], timeout=1)
    server = HookServer(("127.0.0.1", 0), drainer, TokenSource(token=TOKEN))
    server.start_background()
    try:
        client = HookClient(server.url, TOKEN, timeout=30)
        started = time.monotonic()
        replies = client.cordon(["pod-a", "pod-b"])
        assert time.monotonic() - started < 15
        for reply in replies.values():
            assert not reply.acknowledged and reply.error.startswith("broker: ")
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(server.url + "/readyz", timeout=30)
        assert error.value.code == 503
    finally:
        server.shutdown()
        server.server_close()
        drainer.close()


def test_command_line_service(broker_url: str, queue: str, tmp_path: Path, start_worker) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-a-secret\n")
    port = free_port()
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    env.pop("HOOK_TOKEN", None)
    argv = [
        sys.executable, "-m", "controllers.hook",
        "--broker-url", broker_url,
        "--queues", queue,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--token-file", str(token_file),
        "--timeout", "1",
    ]  # fmt: skip
    log_path = tmp_path / "hook.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        client = HookClient(url, "from-a-secret", timeout=30)
        wait_for(client.healthy, 20, f"the hook to listen; log:\n{log_path.read_text()}")
        a = start_worker()
        assert client.cordon([a.name])[a.name].to_report().empty
        # The token is re-read: a rotated Secret takes effect at once.
        token_file.write_text("rotated")
        with pytest.raises(Exception, match="401"):
            client.inspect([a.name])
        assert HookClient(url, "rotated").inspect([a.name])[a.name].to_report().empty
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
    assert code == 0, log_path.read_text()
    assert not pid_alive(proc.pid)
    lines = log_path.read_text().splitlines()
    assert any("POST /shutdownpods 200 pods=1" in line for line in lines)
    assert any("POST /inspectpods 401" in line for line in lines)


def test_worker_stops_by_pid(broker_url: str, queue: str, tmp_path: Path) -> None:
    worker = TinyWorker("pod-stop", broker_url, queues=(queue,), log_dir=tmp_path)
    with worker:
        tree = worker.process.process_tree()
        assert len(tree) >= 2  # the main process and its pool child
    assert worker.process.proc.returncode == 0  # warm shutdown
    assert not any(pid_alive(pid) for pid in tree)
