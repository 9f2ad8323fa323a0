"""Leader election: two operator replicas, one acts; kill it, the other takes over."""

from __future__ import annotations

import re
import signal
import threading
import time

import pytest
from e2e.helpers import wait_for
from kubernetes import client

from controllers.kube.leader import LEASE_DURATION, LeaderElector

from .helpers import add_scale, create, elastic_worker, running_names

pytestmark = pytest.mark.controlplane

LEADING = re.compile(r"leader election: leading as")
STANDBY = re.compile(r"leader election: standby")
# The bound: the lease duration after the dead leader's last renewal, plus the standby's wake-up
# (50 ms after expiry) and the log line reaching the file.
TAKEOVER_BOUND = LEASE_DURATION + 1.0


def test_two_replicas_one_acts_and_the_standby_takes_over(
    start_operator, custom, core_v1: client.CoreV1Api, node_agent, namespace
) -> None:
    first = start_operator("--leader-election")
    wait_for(lambda: LEADING.search(first.log()), 20, what="the first replica leading")
    second = start_operator("--leader-election")
    wait_for(lambda: STANDBY.search(second.log()), 20, what="the second replica on standby")

    create(custom, namespace, elastic_worker("l", min_replicas=2, max_replicas=4))
    wait_for(lambda: len(running_names(core_v1, namespace, "l")) == 2, 30, what="two pods")
    time.sleep(1)
    assert "elasticworker" in first.log()
    assert "elasticworker" not in second.log()
    assert "operator starting" not in second.log()  # the standby runs no controller

    first.kill(signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: LEADING.search(second.log()), 25, interval=0.05, what="the takeover")
    takeover = time.monotonic() - killed
    print(f"\nleader takeover after SIGKILL: {takeover:.2f} s")
    assert takeover <= TAKEOVER_BOUND

    add_scale(custom, namespace, "l", 1)
    wait_for(lambda: len(running_names(core_v1, namespace, "l")) == 3, 30, what="3 pods")
    assert second.alive()


def test_clean_stop_releases_the_lease(start_operator, namespace, node_agent) -> None:
    first = start_operator("--leader-election")
    wait_for(lambda: LEADING.search(first.log()), 20, what="the first replica leading")
    second = start_operator("--leader-election")
    wait_for(lambda: STANDBY.search(second.log()), 20, what="the second replica on standby")
    stopped = time.monotonic()
    assert first.stop() == 0
    wait_for(lambda: LEADING.search(second.log()), 10, interval=0.05, what="the takeover")
    assert time.monotonic() - stopped < 10  # not the full lease duration after the last renewal
    assert "released lease" in first.log()


def test_elector_compare_and_swap(admin_client: client.ApiClient, namespace: str) -> None:
    """In process: one holder at a time; expiry, not politeness, hands the lease over."""
    a = LeaderElector(admin_client, namespace, "cas", identity="a", lease_duration=3,
                      renew_deadline=2, retry_period=0.5)  # fmt: skip
    b = LeaderElector(admin_client, namespace, "cas", identity="b", lease_duration=3,
                      renew_deadline=2, retry_period=0.5)  # fmt: skip
    assert a.try_acquire_or_renew()[0]
    leading, holder, wait = b.try_acquire_or_renew()
    assert not leading and holder == "a" and 0 < wait <= 3
    assert a.try_acquire_or_renew()[0]  # renewal

    stop = threading.Event()
    started = time.monotonic()
    assert b.acquire(stop)  # a stopped renewing: b gets it once the lease expired
    assert 2.0 <= time.monotonic() - started <= 4.0
    leading, holder, _ = a.try_acquire_or_renew()
    assert not leading and holder == "b"
    lease = client.CoordinationV1Api(admin_client).read_namespaced_lease("cas", namespace)
    assert lease.spec.lease_transitions == 1 and lease.spec.lease_duration_seconds == 3


def test_losing_the_lease_stops_the_controllers(
    start_operator, admin_client: client.ApiClient, namespace, node_agent
) -> None:
    leader = start_operator("--leader-election")
    wait_for(lambda: LEADING.search(leader.log()), 20, what="leading")
    leases = client.CoordinationV1Api(admin_client)
    lease = leases.read_namespaced_lease("elastic-airflow-operator", namespace)
    lease.spec.holder_identity = "someone-else"
    leases.replace_namespaced_lease("elastic-airflow-operator", namespace, lease)
    wait_for(lambda: not leader.alive(), 10, what="the operator to exit")
    assert leader.proc.returncode != 0
    assert "lease taken by someone-else" in leader.log()
