"""Manifests and probes for the operator tests."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from controllers.api import AUTOSCALER_PLURAL, ELASTIC_WORKER_PLURAL, GROUP, VERSION
from controllers.kube.views import OWNER_LABEL

# A worker stand-in: sleeps, and leaves at once on SIGTERM (the node agent runs it as a process).
SLEEPER = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "while True: time.sleep(1)\n"
)
MARK = {"delete": "true"}


def elastic_worker(
    name: str,
    *,
    min_replicas: int = 2,
    max_replicas: int = 5,
    replicas: int | None = None,
    policy: str = "selector",
    script: str = SLEEPER,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    selector: dict[str, Any] | None = None,
) -> dict[str, Any]:
    scale_in: dict[str, Any] = {"name": policy}
    if policy == "selector":
        scale_in["selector"] = {"matchLabels": dict(MARK)}
    spec: dict[str, Any] = {
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "scaleInPolicy": scale_in,
        "template": {
            "metadata": {
                "labels": labels if labels is not None else {"app": name},
                "annotations": annotations or {},
            },
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 3,
                "containers": [
                    {
                        "name": "worker",
                        "image": "python:3.11-slim",
                        "command": ["python3", "-c", script],
                    }
                ],
            },
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    if selector is not None:
        spec["selector"] = selector
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ElasticWorker",
        "metadata": {"name": name},
        "spec": spec,
    }


def autoscaler(
    name: str,
    target: str,
    *,
    target_value: int = 60,
    back_off: int = 30,
    hook: str | None = None,
    max_age: int = 30,
) -> dict[str, Any]:
    scale_in: dict[str, Any] = {"markForTerminationLabel": dict(MARK), "scaleInBackOff": back_off}
    if hook is not None:
        scale_in["shutdownHttpHook"] = hook
        scale_in["hookTimeoutSeconds"] = 5
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ElasticWorkerAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"name": target},
            "metricSpec": {"name": "total_cluster_load", "maxAgeSeconds": max_age},
            "targetValue": target_value,
            "scaleInSpec": scale_in,
        },
    }


def create(custom: client.CustomObjectsApi, namespace: str, body: dict[str, Any]) -> dict:
    plural = ELASTIC_WORKER_PLURAL if body["kind"] == "ElasticWorker" else AUTOSCALER_PLURAL
    return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)


def get_ew(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, ELASTIC_WORKER_PLURAL, name
    )


def get_ewa(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, AUTOSCALER_PLURAL, name)


def patch_ew(custom: client.CustomObjectsApi, namespace: str, name: str, body: dict) -> dict:
    return custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, ELASTIC_WORKER_PLURAL, name, body
    )


def add_scale(custom: client.CustomObjectsApi, namespace: str, name: str, delta: int) -> None:
    """A client's `scale += delta`: read, add, write conditioned on the resourceVersion."""
    for _ in range(20):
        ew = get_ew(custom, namespace, name)
        body = {
            "metadata": {"resourceVersion": ew["metadata"]["resourceVersion"]},
            "spec": {"scale": (ew["spec"].get("scale") or 0) + delta},
        }
        try:
            patch_ew(custom, namespace, name, body)
            return
        except ApiException as error:
            if error.status != 409:
                raise
    raise AssertionError("scale write kept conflicting")


def pods_of(core: client.CoreV1Api, namespace: str, ew: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(namespace, label_selector=f"{OWNER_LABEL}={ew}").items


def live_pods(core: client.CoreV1Api, namespace: str, ew: str) -> list[client.V1Pod]:
    return [
        p
        for p in pods_of(core, namespace, ew)
        if p.metadata.deletion_timestamp is None and p.status.phase in ("Pending", "Running")
    ]


def running_names(core: client.CoreV1Api, namespace: str, ew: str) -> list[str]:
    return sorted(
        p.metadata.name for p in live_pods(core, namespace, ew) if p.status.phase == "Running"
    )


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None
