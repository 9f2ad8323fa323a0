"""Fixtures for the drain hook tests: a hook in this process, tiny Celery workers as processes."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from controllers.hook.client import HookClient
from controllers.hook.drain import CeleryDrainer
from controllers.hook.server import HookServer, TokenSource
from harness.e2e.tinyapp import WORK_TASK, TinyWorker, make_app
from harness.services import RabbitMQServer

TOKEN = "test-token-123"
# Short per-call timeout: unknown pods cost this much, known ones answer in milliseconds.
HOOK_TIMEOUT = 1.0

_names = itertools.count()


@pytest.fixture
def queue() -> str:
    """A queue of this test's own, so tests sharing the broker never see each other's tasks."""
    return f"q-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def broker_url(rabbitmq_server: RabbitMQServer) -> str:
    return rabbitmq_server.url


@pytest.fixture
def hook(broker_url: str, queue: str) -> Iterator[HookServer]:
    drainer = CeleryDrainer(broker_url, [queue], timeout=HOOK_TIMEOUT)
    server = HookServer(("127.0.0.1", 0), drainer, TokenSource(token=TOKEN))
    server.start_background()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        drainer.close()


@pytest.fixture
def client(hook: HookServer) -> HookClient:
    return HookClient(hook.url, TOKEN, timeout=30)


@pytest.fixture
def sender(broker_url: str) -> Iterator[Celery]:
    app = make_app(broker_url)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def send(sender: Celery, queue: str, tmp_path: Path) -> Callable[[float], str]:
    """Send one `work(seconds, out)` task to the test's queue; return its id."""

    def _send(seconds: float) -> str:
        return sender.send_task(WORK_TASK, (seconds, str(tmp_path / "out")), queue=queue).id

    return _send


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def start_worker(
    broker_url: str, queue: str, tmp_path: Path
) -> Iterator[Callable[..., TinyWorker]]:
    """Start a tiny worker process on the test's queue; every one is stopped by pid at the end."""
    started: list[TinyWorker] = []

    def _start(name: str | None = None, **kwargs: Any) -> TinyWorker:
        name = name or f"pod-{uuid.uuid4().hex[:6]}-{next(_names)}"
        kwargs.setdefault("queues", (queue,))
        worker = TinyWorker(name, broker_url, log_dir=tmp_path, **kwargs)
        started.append(worker)
        return worker.start()

    yield _start
    for worker in reversed(started):
        worker.stop(timeout=10)
