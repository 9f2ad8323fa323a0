"""RabbitMQ with one queue: FIFO, prefetch-limited round-robin delivery, early or late ack.

Each consuming worker (channel) may hold up to `prefetch` unacknowledged messages (0: no limit).
With early ack a message is acked when its task starts; with late ack (`acks_late`) when it ends,
so active tasks count against the prefetch. Unacked messages of a closed channel go back to the
front of the queue. Deliveries happen on events only: a message published or requeued, an ack,
a consumer added.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.sim.airflow import TaskTry
    from harness.sim.worker import CeleryWorker


class Broker:
    def __init__(self, prefetch: int) -> None:
        self.prefetch = prefetch
        self.queue: deque[TaskTry] = deque()
        # Consumers that have room, in round-robin order. A consumer appears at most once
        # (`in_ready`); one that stopped consuming is dropped when its turn comes.
        self.ready: deque[CeleryWorker] = deque()
        self.dispatching = False

    def publish(self, message: TaskTry) -> None:
        self.queue.append(message)
        self.dispatch()

    def requeue(self, messages: Iterable[TaskTry]) -> None:
        """A channel closed: its unacked messages go back to the front, in their order."""
        self.queue.extendleft(reversed(list(messages)))
        self.dispatch()

    def consume(self, worker: CeleryWorker) -> None:
        worker.consuming = True
        self.offer(worker)
        self.dispatch()

    def cancel(self, worker: CeleryWorker) -> None:
        """`basic.cancel`: no new deliveries. Messages already delivered stay with the worker."""
        worker.consuming = False

    def ack(self, worker: CeleryWorker) -> None:
        worker.unacked -= 1
        if worker.consuming:
            self.offer(worker)
            self.dispatch()

    def has_room(self, worker: CeleryWorker) -> bool:
        return not self.prefetch or worker.unacked < self.prefetch

    def offer(self, worker: CeleryWorker) -> None:
        if not worker.in_ready and self.has_room(worker):
            worker.in_ready = True
            self.ready.append(worker)

    def dispatch(self) -> None:
        if self.dispatching:
            return  # an ack inside a delivery: the loop below goes on
        self.dispatching = True
        queue, ready = self.queue, self.ready
        while queue and ready:
            worker = ready.popleft()
            if not worker.consuming or not self.has_room(worker):
                worker.in_ready = False
                continue
            worker.unacked += 1
            worker.receive(queue.popleft())
            if worker.consuming and self.has_room(worker):
                ready.append(worker)
            else:
                worker.in_ready = False
        self.dispatching = False
