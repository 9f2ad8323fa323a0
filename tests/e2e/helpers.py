"""Shared helpers for the control-plane tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.1, what: str = ""
) -> T:
    """Poll `probe` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what or probe}")
        time.sleep(interval)


def process_gone(pid: int) -> bool:
    """No process with this pid, and none left in its process group."""
    for probe in (os.kill, os.killpg):
        try:
            probe(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


def python_pod(
    name: str,
    script: str,
    *,
    env: dict[str, str] | None = None,
    restart_policy: str = "Never",
    grace_seconds: int | None = None,
    node_name: str | None = None,
    scheduler_name: str | None = None,
) -> dict[str, Any]:
    """A pod manifest whose only container runs `python3 -c script`."""
    container: dict[str, Any] = {
        "name": "main",
        # Never pulled: the node agent runs the command only.
        "image": "python:3.11-slim",
        "command": ["python3", "-c", script],
        "env": [{"name": key, "value": value} for key, value in (env or {}).items()],
    }
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": restart_policy}
    if grace_seconds is not None:
        spec["terminationGracePeriodSeconds"] = grace_seconds
    if node_name is not None:
        spec["nodeName"] = node_name
    if scheduler_name is not None:
        spec["schedulerName"] = scheduler_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def read_pod(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod | None:
    """The pod, or None once it is gone."""
    try:
        return core.read_namespaced_pod(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def pod_phase(core: client.CoreV1Api, namespace: str, name: str) -> str | None:
    pod = read_pod(core, namespace, name)
    return pod.status.phase if pod is not None and pod.status is not None else None
