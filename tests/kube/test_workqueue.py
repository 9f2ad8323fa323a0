"""The work queue: coalescing, one worker per key, delays pulled forward by events."""

from __future__ import annotations

import threading
import time

from controllers.kube.workqueue import WorkQueue, run_workers


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_keys_coalesce_and_come_out_in_due_order() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock)
    queue.add("b", delay=5)
    queue.add("a")
    queue.add("a")
    assert len(queue) == 2
    assert queue.get(timeout=0) == "a"
    assert queue.get(timeout=0) is None  # "b" not due yet
    clock.now = 5
    assert queue.get(timeout=0) == "b"


def test_an_event_pulls_a_timer_forward_but_not_back() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock)
    queue.add("k", delay=10)
    queue.add("k", delay=20)  # later: ignored
    queue.add("k", delay=1)
    clock.now = 1
    assert queue.get(timeout=0) == "k"
    queue.done("k")
    assert queue.get(timeout=0) is None and len(queue) == 0


def test_a_key_added_while_active_runs_again_after_done() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock)
    queue.add("k")
    assert queue.get(timeout=0) == "k"
    queue.add("k")
    assert queue.get(timeout=0) is None  # never twice at once
    queue.done("k")
    assert queue.get(timeout=0) == "k"


def test_forget_and_close() -> None:
    queue = WorkQueue()
    queue.add("k", delay=0.01)
    queue.forget("k")
    assert queue.get(timeout=0.05) is None
    queue.close()
    queue.add("k")
    assert queue.get(timeout=1) is None


def test_workers_requeue_after_the_delay_and_survive_errors() -> None:
    queue = WorkQueue()
    runs: list[str] = []
    concurrent = {"now": 0, "max": 0}
    lock = threading.Lock()

    def handle(key: object) -> float | None:
        with lock:
            concurrent["now"] += 1
            concurrent["max"] = max(concurrent["max"], concurrent["now"])
        time.sleep(0.01)
        with lock:
            concurrent["now"] -= 1
            runs.append(str(key))
        if key == "boom" and runs.count("boom") == 1:
            raise RuntimeError("first run fails")
        return 0.02 if key == "tick" else None

    threads = run_workers(queue, handle, 3)
    queue.add("tick")
    queue.add("boom")
    for _ in range(5):
        queue.add("tick")
    time.sleep(2.5)
    queue.close()
    for thread in threads:
        thread.join(2)
    assert runs.count("tick") >= 5  # re-added after each run
    assert runs.count("boom") == 2  # retried after the failure (2 s later)
    assert concurrent["max"] <= 2  # "tick" and "boom" at most, never "tick" twice
