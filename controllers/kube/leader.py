"""Leader election with a `coordination.k8s.io/v1` Lease, after client-go's leaderelection.

Only the holder of the Lease runs the controllers. The holder renews every `retry_period`
(2 s); a standby takes the Lease once its `renewTime + leaseDurationSeconds` (15 s) has passed.
Every write is a compare-and-swap on the Lease's resourceVersion, so two standbys never both
win. A holder that has not renewed for `renew_deadline` (10 s, less than the duration) gives up
before anyone else may take over, so two leaders never act at once; giving up means the process
exits non-zero and is restarted as a standby.

A holder that stops cleanly releases the Lease (renewTime in the past), so its standby takes
over at its next retry instead of after the full duration.

Expiry is judged on the Lease's `renewTime`, written by the holder's clock: nodes are expected
to keep their clocks in sync (NTP), as the Kubernetes control plane itself assumes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

log = logging.getLogger(__name__)

LEASE_NAME = "elastic-airflow-operator"
LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0
REQUEST_TIMEOUT = 5.0


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def _now() -> datetime:
    return datetime.now(tz=UTC)


@dataclass
class LeaderElector:
    api: k8s.ApiClient
    namespace: str
    name: str = LEASE_NAME
    identity: str = field(default_factory=default_identity)
    lease_duration: float = LEASE_DURATION
    renew_deadline: float = RENEW_DEADLINE
    retry_period: float = RETRY_PERIOD
    clock: Callable[[], datetime] = _now

    def __post_init__(self) -> None:
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self.coordination = k8s.CoordinationV1Api(self.api)
        self.leading = threading.Event()
        self._last_renew = 0.0  # time.monotonic() of the last successful renewal

    # -- one attempt -----------------------------------------------------------------------------

    def _read(self) -> k8s.V1Lease | None:
        try:
            return self.coordination.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _spec(self, acquire_time: datetime | None, transitions: int) -> k8s.V1LeaseSpec:
        now = self.clock()
        return k8s.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=int(self.lease_duration),
            acquire_time=acquire_time or now,
            renew_time=now,
            lease_transitions=transitions,
        )

    def expires_at(self, lease: k8s.V1Lease) -> datetime | None:
        spec = lease.spec
        if spec is None or not spec.holder_identity or spec.renew_time is None:
            return None
        duration = spec.lease_duration_seconds or self.lease_duration
        return spec.renew_time + timedelta(seconds=duration)

    def try_acquire_or_renew(self) -> tuple[bool, str | None, float]:
        """One attempt. Returns (leading, current holder, seconds until the lease can be taken)."""
        lease = self._read()
        if lease is None:
            body = k8s.V1Lease(
                metadata=k8s.V1ObjectMeta(name=self.name, namespace=self.namespace),
                spec=self._spec(None, 0),
            )
            try:
                self.coordination.create_namespaced_lease(
                    self.namespace, body, _request_timeout=REQUEST_TIMEOUT
                )
            except ApiException as error:
                if error.status == 409:
                    return False, None, 0.0
                raise
            return True, self.identity, 0.0

        spec = lease.spec or k8s.V1LeaseSpec()
        holder = spec.holder_identity or None
        transitions = spec.lease_transitions or 0
        if holder == self.identity:
            lease.spec = self._spec(spec.acquire_time, transitions)
        else:
            expiry = self.expires_at(lease)
            now = self.clock()
            if expiry is not None and now < expiry:
                return False, holder, (expiry - now).total_seconds()
            lease.spec = self._spec(None, transitions + 1)
        try:
            self.coordination.replace_namespaced_lease(
                self.name, self.namespace, lease, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as error:
            if error.status == 409:  # someone else wrote first
                return False, holder, 0.0
            raise
        return True, self.identity, 0.0

    # -- loops -----------------------------------------------------------------------------------

    def acquire(self, stop: threading.Event) -> bool:
        """Block until leading (True) or `stop` is set (False). Logs while on standby."""
        announced = None
        while not stop.is_set():
            try:
                leading, holder, wait = self.try_acquire_or_renew()
            except Exception as error:
                log.warning("leader election: lease %s/%s: %s", self.namespace, self.name, error)
                leading, holder, wait = False, announced, self.retry_period
            if leading:
                self._last_renew = time.monotonic()
                self.leading.set()
                log.info(
                    "leader election: leading as %s (lease %s/%s)",
                    self.identity,
                    self.namespace,
                    self.name,
                )
                return True
            if holder != announced:
                log.info(
                    "leader election: standby, lease %s/%s held by %s",
                    self.namespace,
                    self.name,
                    holder,
                )
                announced = holder
            # Wake up just after the lease expires, or at the retry period, whichever is first:
            # a dead holder is replaced within the lease duration of its last renewal.
            stop.wait(min(self.retry_period, wait + 0.05) if wait > 0 else self.retry_period)
        return False

    def renew_until_lost(self, stop: threading.Event) -> bool:
        """Renew every retry period until `stop` (True) or the lease is lost (False)."""
        while not stop.wait(self.retry_period):
            try:
                leading, holder, _ = self.try_acquire_or_renew()
            except Exception as error:
                log.warning("leader election: renewal failed: %s", error)
                leading, holder = False, None
                if time.monotonic() - self._last_renew < self.renew_deadline:
                    continue
            if leading:
                self._last_renew = time.monotonic()
                continue
            if holder is not None and holder != self.identity:
                log.error("leader election: lease taken by %s", holder)
            elif time.monotonic() - self._last_renew < self.renew_deadline:
                continue
            self.leading.clear()
            log.error("leader election: lost lease %s/%s", self.namespace, self.name)
            return False
        return True

    def release(self) -> None:
        """Give the lease up at a clean stop, so a standby need not wait for it to expire."""
        self.leading.clear()
        try:
            lease = self._read()
            if lease is None or lease.spec is None or lease.spec.holder_identity != self.identity:
                return
            past = self.clock() - timedelta(seconds=self.lease_duration + 1)
            lease.spec.renew_time = past
            lease.spec.acquire_time = lease.spec.acquire_time or past
            lease.spec.lease_duration_seconds = 1
            self.coordination.replace_namespaced_lease(
                self.name, self.namespace, lease, _request_timeout=REQUEST_TIMEOUT
            )
            log.info("leader election: released lease %s/%s", self.namespace, self.name)
        except Exception as error:
            log.warning("leader election: release failed: %s", error)
