"""Cordon, inspect and restore Celery workers through Celery's remote control.

Every answer is per pod: a pod that does not reply, or replies with an error,
gets `acknowledged: false` and an `error`; the others are unaffected.

Cordon (`cancel_consumer` for each queue) is acknowledged by the worker before
its consumer is actually cancelled (Celery runs the cancel with `call_soon` on
its event loop), but that loop runs pending callbacks before it handles the
next message, so every inspection sent after the acknowledgement sees the
cancelled state. The inspection asks, in this order:

1. `active_queues`: the hook's queues the worker still consumes from; after a
   cordon this must be empty (RabbitMQ sends no delivery after `cancel-ok`).
2. `scheduled`: ETA/countdown tasks the worker holds (they become reserved later).
3. `reserved`: prefetched tasks not yet started. After `cancel_consumer` they
   stay on the worker until they run or its channel closes (Celery issue 2564):
   they are counted, never assumed to have gone back to the queue.
4. `active`: tasks running now.

A task only moves scheduled -> reserved -> active, so asking in that order
cannot miss a task that moves between two questions. `reserved` in the answer
is reserved + scheduled; `scheduled` is also given alone.

Replies are dictionaries ready for JSON:

    {"acknowledged": true, "active": 0, "reserved": 1, "scheduled": 0,
     "consuming": [], "at": 1700000000.123}
    {"acknowledged": false, "error": "no reply from celery@pod-b"}
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from celery import Celery

from controllers.hook.naming import celery_nodename

log = logging.getLogger(__name__)

PodAnswer = dict[str, Any]


class CeleryDrainer:
    """Remote control of the workers consuming `queues` on `broker_url`.

    `timeout` bounds each Celery call (the reply collection of one broadcast);
    a pod that misses one reply is left out of the following calls, so a
    request costs at most about two timeouts however many pods are unknown.
    Calls are serialised (one broadcast at a time per drainer).
    """

    def __init__(
        self,
        broker_url: str,
        queues: Sequence[str],
        *,
        timeout: float = 5.0,
        control_exchange: str = "celery",
        app: Celery | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not queues:
            raise ValueError("at least one queue is needed")
        self.queues = tuple(dict.fromkeys(queues))
        self.timeout = float(timeout)
        self.clock = clock
        if app is None:
            app = Celery("elastic-airflow-hook", broker=broker_url, set_as_current=False)
            app.conf.update(
                control_exchange=control_exchange,
                broker_connection_timeout=max(1.0, self.timeout),
                broker_connection_retry_on_startup=True,
                accept_content=["json"],
            )
        self.app = app
        self._lock = threading.Lock()

    def close(self) -> None:
        self.app.close()

    # -- the three operations ------------------------------------------------------------------

    def cordon(self, pods: Sequence[str]) -> dict[str, PodAnswer]:
        """`cancel_consumer` for each queue, then (after the acknowledgement) inspect."""
        return self._guarded(pods, self._cordon)

    def inspect(self, pods: Sequence[str]) -> dict[str, PodAnswer]:
        """The tasks report without cancelling; `acknowledged` means the worker answered."""
        return self._guarded(pods, self._inspect)

    def restore(self, pods: Sequence[str]) -> dict[str, PodAnswer]:
        """`add_consumer` for each queue (undo a cordon), then report the queues consumed."""
        return self._guarded(pods, self._restore)

    def ping_broker(self) -> None:
        """Raise when the broker cannot be reached within the timeout."""
        with self.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=self.timeout)

    # -- internals -----------------------------------------------------------------------------

    def _guarded(
        self,
        pods: Sequence[str],
        operation: Callable[[dict[str, str], dict[str, PodAnswer]], None],
    ) -> dict[str, PodAnswer]:
        pods = list(dict.fromkeys(pods))
        answers: dict[str, PodAnswer] = {pod: {} for pod in pods}
        if not pods:
            return answers
        nodes = {pod: celery_nodename(pod) for pod in pods}
        with self._lock:
            try:
                operation(nodes, answers)
            except Exception as error:  # the broker, not a pod, failed: every open pod says so
                log.warning("celery remote control failed: %r", error)
                for answer in answers.values():
                    if not answer:  # pods already answered keep their answer
                        answer.update(acknowledged=False, error=f"broker: {error}")
        return answers

    def _cordon(self, nodes: dict[str, str], answers: dict[str, PodAnswer]) -> None:
        pending = self._each_queue(self.app.control.cancel_consumer, nodes, answers)
        self._report(pending, nodes, answers, expect_consuming=False)

    def _inspect(self, nodes: dict[str, str], answers: dict[str, PodAnswer]) -> None:
        self._report(list(nodes), nodes, answers, expect_consuming=None)

    def _restore(self, nodes: dict[str, str], answers: dict[str, PodAnswer]) -> None:
        pending = self._each_queue(self.app.control.add_consumer, nodes, answers)
        if not pending:
            return
        queues = self._call("active_queues", [nodes[p] for p in pending])
        for pod in pending:
            reply = queues.get(nodes[pod])
            answers[pod]["acknowledged"] = True
            if reply is None:
                answers[pod]["error"] = f"no active_queues reply from {nodes[pod]}"
                continue
            answers[pod]["consuming"] = self._ours(reply)
            missing = [q for q in self.queues if q not in answers[pod]["consuming"]]
            if missing:
                answers[pod]["error"] = f"not consuming from {', '.join(missing)}"

    def _each_queue(
        self,
        command: Callable[..., Any],
        nodes: dict[str, str],
        answers: dict[str, PodAnswer],
    ) -> list[str]:
        """Run `command(queue, destination=..., reply=True)` for every queue; the acked pods."""
        pending = list(nodes)
        for queue in self.queues:
            if not pending:
                break
            replies = _merge(
                command(
                    queue,
                    destination=[nodes[p] for p in pending],
                    reply=True,
                    timeout=self.timeout,
                )
            )
            still = []
            for pod in pending:
                reply = replies.get(nodes[pod])
                if reply is None:
                    answers[pod].update(acknowledged=False, error=f"no reply from {nodes[pod]}")
                elif isinstance(reply, dict) and "ok" in reply:
                    still.append(pod)
                else:
                    detail = reply.get("error") if isinstance(reply, dict) else reply
                    answers[pod].update(
                        acknowledged=False, error=f"{nodes[pod]} refused {queue}: {detail}"
                    )
            pending = still
        return pending

    def _report(
        self,
        pods: list[str],
        nodes: dict[str, str],
        answers: dict[str, PodAnswer],
        *,
        expect_consuming: bool | None,
    ) -> None:
        """Ask active_queues, scheduled, reserved, active (in that order) of `pods`."""
        results: dict[str, dict[str, Any]] = {pod: {} for pod in pods}
        for command in ("active_queues", "scheduled", "reserved", "active"):
            if not pods:
                break
            replies = self._call(command, [nodes[p] for p in pods])
            answered = []
            for pod in pods:
                reply = replies.get(nodes[pod])
                if reply is None:
                    acked = expect_consuming is False  # a cordon was acknowledged already
                    answers[pod].update(
                        acknowledged=acked, error=f"no {command} reply from {nodes[pod]}"
                    )
                else:
                    results[pod][command] = reply
                    answered.append(pod)
            pods = answered
        at = self.clock()
        for pod in pods:
            got = results[pod]
            consuming = self._ours(got["active_queues"])
            scheduled = _count(got["scheduled"])
            answer: PodAnswer = {
                "acknowledged": True,
                "active": _count(got["active"]),
                "reserved": _count(got["reserved"]) + scheduled,
                "scheduled": scheduled,
                "consuming": consuming,
                "at": at,
            }
            if expect_consuming is False and consuming:
                answer["error"] = f"still consuming from {', '.join(consuming)} after the cordon"
            answers[pod].update(answer)

    def _call(self, command: str, destination: list[str]) -> dict[str, Any]:
        inspect = self.app.control.inspect(destination=destination, timeout=self.timeout)
        return getattr(inspect, command)() or {}

    def _ours(self, reply: Any) -> list[str]:
        names = {q.get("name") for q in reply or [] if isinstance(q, dict)}
        return [q for q in self.queues if q in names]


def _merge(replies: list[dict[str, Any]] | None) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for reply in replies or []:
        merged.update(reply)
    return merged


def _count(reply: Any) -> int:
    return len(reply) if isinstance(reply, list) else 0
