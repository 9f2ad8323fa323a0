"""A rate-free work queue after client-go's: keys, not events, with delayed re-adds.

- A key queued twice is processed once (events coalesce).
- A key is never processed by two workers at once; a key added while it is being processed
  is processed again right after (nothing is missed).
- `add(key, delay)` keeps the earliest due time, so a watch event pulls a timer forward.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable

log = logging.getLogger(__name__)

Key = Hashable


class WorkQueue:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Key]] = []
        self._due: dict[Key, float] = {}
        self._active: set[Key] = set()
        self._again: dict[Key, float] = {}  # added while active: due time to use after
        self._seq = itertools.count()
        self._closed = False

    def add(self, key: Key, delay: float = 0.0) -> None:
        with self._cond:
            if self._closed:
                return
            due = self._clock() + max(delay, 0.0)
            if key in self._active:
                self._again[key] = min(due, self._again.get(key, due))
                return
            if key in self._due and self._due[key] <= due:
                return
            self._due[key] = due
            heapq.heappush(self._heap, (due, next(self._seq), key))
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Key | None:
        """The next due key (now marked active), or None on close or timeout."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while not self._closed:
                now = self._clock()
                while self._heap:
                    due, _, key = self._heap[0]
                    if self._due.get(key) != due:
                        heapq.heappop(self._heap)  # superseded by an earlier add
                        continue
                    break
                wait = None
                if self._heap:
                    due, _, key = self._heap[0]
                    if due <= now:
                        heapq.heappop(self._heap)
                        del self._due[key]
                        self._active.add(key)
                        return key
                    wait = due - now
                if deadline is not None:
                    left = deadline - now
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)
            return None

    def done(self, key: Key) -> None:
        with self._cond:
            self._active.discard(key)
            if key in self._again:
                due = self._again.pop(key)
                if key not in self._due or due < self._due[key]:
                    self._due[key] = due
                    heapq.heappush(self._heap, (due, next(self._seq), key))
                self._cond.notify()

    def forget(self, key: Key) -> None:
        """Drop a pending key (its object is gone)."""
        with self._cond:
            self._due.pop(key, None)
            self._again.pop(key, None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._due)


def run_workers(
    queue: WorkQueue,
    handle: Callable[[Key], float | None],
    count: int,
    name: str = "worker",
) -> list[threading.Thread]:
    """Start `count` threads that process keys; `handle` returns the delay before the key's
    next run (None: not again until an event adds it). A failure is logged and retried."""

    def loop() -> None:
        while True:
            key = queue.get()
            if key is None:
                return
            delay: float | None
            try:
                delay = handle(key)
            except Exception:
                log.exception("%s failed; retrying in 2 s", key)
                delay = 2.0
            finally:
                queue.done(key)
            if delay is not None:
                queue.add(key, delay)

    threads = [threading.Thread(target=loop, name=f"{name}-{i}", daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads
