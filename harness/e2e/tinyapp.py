"""A tiny Celery app standing in for Airflow's workers in tests.

Configured like Airflow's Celery executor where it matters for draining:
`task_acks_late=True`, `worker_prefetch_multiplier=1` (override with env
`TINYAPP_PREFETCH`), default queue `default`. The broker comes from env
`BROKER_URL`. One task, `tinyapp.work(seconds, path)`: sleeps, then appends one
line `<worker nodename> <task id> <started> <finished>` to `path`.

Start a worker by hand:

    BROKER_URL=amqp://... celery -A harness.e2e.tinyapp worker --hostname celery@pod-a \\
        -Q default -c 2 --without-gossip --without-mingle -E

or with `TinyWorker` (a context manager that starts that command as its own
process session, waits until it consumes, and stops it by pid):

    with TinyWorker("pod-a", broker_url) as worker:
        make_app(broker_url).send_task(WORK_TASK, (5, "/tmp/out"), queue="default")
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from celery import Celery

from harness.managed import Managed
from harness.services import ManagedProcess, ServiceError, spawn

DEFAULT_QUEUE = "default"
WORK_TASK = "tinyapp.work"
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"


def make_app(
    broker_url: str | None = None,
    *,
    prefetch_multiplier: int | None = None,
    queue: str = DEFAULT_QUEUE,
) -> Celery:
    """The tiny app; broker and prefetch from the arguments, else from the environment."""
    app = Celery("tinyapp", broker=broker_url or os.environ.get("BROKER_URL", DEFAULT_BROKER))
    if prefetch_multiplier is None:
        prefetch_multiplier = int(os.environ.get("TINYAPP_PREFETCH", "1"))
    app.conf.update(
        task_acks_late=True,
        worker_prefetch_multiplier=prefetch_multiplier,
        task_default_queue=queue,
        task_ignore_result=True,
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        accept_content=["json"],
        task_serializer="json",
    )

    @app.task(name=WORK_TASK, bind=True)
    def work(self: Any, seconds: float, path: str) -> str:
        started = time.time()
        time.sleep(float(seconds))
        line = f"{self.request.hostname} {self.request.id} {started:.3f} {time.time():.3f}\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        return line.strip()

    return app


app = make_app()
work = app.tasks[WORK_TASK]


def read_lines(path: str | Path) -> list[tuple[str, str]]:
    """(worker nodename, task id) of each line `work` appended to `path`."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    return [(parts[0], parts[1]) for parts in (line.split() for line in text.splitlines()) if parts]


def worker_argv(
    name: str,
    *,
    queues: Sequence[str] = (DEFAULT_QUEUE,),
    concurrency: int = 2,
    loglevel: str = "INFO",
    extra: Sequence[str] = (),
) -> list[str]:
    """The worker command line for pod `name` (Celery node `celery@name`)."""
    return [
        sys.executable, "-m", "celery",
        "-A", "harness.e2e.tinyapp",
        "worker",
        "--hostname", f"celery@{name}",
        "-Q", ",".join(queues),
        "-c", str(concurrency),
        "--without-gossip", "--without-mingle", "-E",
        "--loglevel", loglevel,
        *extra,
    ]  # fmt: skip


class TinyWorker(Managed):
    """A tinyapp worker process for pod `name`, in its own session; a context manager.

    `start()` waits until the worker answers a ping and consumes all its queues.
    `stop()` sends SIGTERM (Celery's warm shutdown: running tasks finish) and
    SIGKILLs the process group after `stop_timeout`; `kill()` SIGKILLs at once.
    """

    def __init__(
        self,
        name: str,
        broker_url: str,
        *,
        queues: Sequence[str] = (DEFAULT_QUEUE,),
        concurrency: int = 2,
        prefetch_multiplier: int = 1,
        startup_timeout: float = 60.0,
        stop_timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
        log_dir: str | Path | None = None,
    ) -> None:
        self.name = name
        self.nodename = f"celery@{name}"
        self.broker_url = broker_url
        self.queues = tuple(queues)
        self.concurrency = concurrency
        self.prefetch_multiplier = prefetch_multiplier
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.env = dict(env or {})
        self.log_dir = Path(log_dir or tempfile.gettempdir())
        self.startup_seconds = 0.0
        self.process: ManagedProcess | None = None
        self._control_app: Celery | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def control_app(self) -> Celery:
        if self._control_app is None:
            self._control_app = make_app(self.broker_url)
        return self._control_app

    def start(self) -> Self:
        started = time.monotonic()
        env = {**os.environ, **self.env}
        env["BROKER_URL"] = self.broker_url
        env["TINYAPP_PREFETCH"] = str(self.prefetch_multiplier)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        log_path = Path(tempfile.mkstemp(prefix=f"tinyworker-{self.name}-", suffix=".log",
                                         dir=self.log_dir)[1])  # fmt: skip
        argv = worker_argv(self.name, queues=self.queues, concurrency=self.concurrency)
        self.process = spawn(f"celery-{self.name}", argv, log_path=log_path, env=env)
        try:
            self._wait_consuming(started + self.startup_timeout)
        except BaseException:
            self.stop(timeout=0)
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _wait_consuming(self, deadline: float) -> None:
        assert self.process is not None
        while time.monotonic() < deadline:
            if not self.process.alive:
                raise ServiceError(
                    f"worker {self.nodename} exited with {self.process.proc.returncode}; "
                    f"log tail:\n{self.process.log_tail()}"
                )
            if set(self.queues) <= set(self.consuming()):
                return
            time.sleep(0.2)
        raise ServiceError(f"worker {self.nodename} not consuming; log:\n{self.log_tail()}")

    def consuming(self, timeout: float = 1.0) -> list[str]:
        """The queues the worker says it consumes from ([] when it does not answer)."""
        inspect = self.control_app.control.inspect(destination=[self.nodename], timeout=timeout)
        replies = inspect.active_queues() or {}
        return [q["name"] for q in replies.get(self.nodename) or []]

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.alive

    def log_tail(self) -> str:
        return self.process.log_tail() if self.process is not None else ""

    def stop(self, timeout: float | None = None) -> int | None:
        """Warm shutdown by SIGTERM, SIGKILL to the group after `timeout`; the exit code."""
        if self.process is None:
            return None
        code = self.process.stop(self.stop_timeout if timeout is None else timeout)
        if self._control_app is not None:
            self._control_app.close()
            self._control_app = None
        return code

    def kill(self) -> int | None:
        """SIGKILL the worker and its pool processes at once (a crash)."""
        if self.process is None:
            return None
        self.process.stop_signal = signal.SIGKILL
        return self.stop(timeout=5)
