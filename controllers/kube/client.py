"""The few Kubernetes API calls the operator makes, as plain dicts, each with a timeout.

Objects are returned as the API server serves them (camelCase dicts), so that the pure
converters in `views.py` read exactly what is stored.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from controllers.api import AUTOSCALER_PLURAL, ELASTIC_WORKER_PLURAL, GROUP, VERSION

log = logging.getLogger(__name__)

# Seconds for one API request; a hung connection must not stall a controller loop.
REQUEST_TIMEOUT = 10.0
COMPONENT = "elastic-airflow-operator"

Obj = dict[str, Any]


class Conflict(Exception):
    """409: the object changed since it was read (or already exists)."""


def load_api_client(kubeconfig: str | None = None) -> k8s.ApiClient:
    """A client for `kubeconfig`, else in-cluster, else the default kubeconfig."""
    if kubeconfig:
        return k8s_config.new_client_from_config(config_file=kubeconfig)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = k8s.Configuration()
        k8s_config.load_incluster_config(client_configuration=configuration)
        return k8s.ApiClient(configuration)
    return k8s_config.new_client_from_config()


def _json(response: Any) -> Obj:
    return json.loads(response.data)


def _not_found(error: ApiException) -> bool:
    return error.status == 404


@dataclass
class Kube:
    api: k8s.ApiClient
    timeout: float = REQUEST_TIMEOUT

    def __post_init__(self) -> None:
        self.core = k8s.CoreV1Api(self.api)
        self.custom = k8s.CustomObjectsApi(self.api)

    # -- custom resources ---------------------------------------------------------------------

    def get_custom(self, plural: str, namespace: str, name: str) -> Obj | None:
        try:
            return _json(
                self.custom.get_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    plural,
                    name,
                    _preload_content=False,
                    _request_timeout=self.timeout,
                )
            )
        except ApiException as error:
            if _not_found(error):
                return None
            raise

    def get_elastic_worker(self, namespace: str, name: str) -> Obj | None:
        return self.get_custom(ELASTIC_WORKER_PLURAL, namespace, name)

    def get_autoscaler(self, namespace: str, name: str) -> Obj | None:
        return self.get_custom(AUTOSCALER_PLURAL, namespace, name)

    def patch_spec(
        self, plural: str, namespace: str, name: str, resource_version: str, spec: Obj
    ) -> Obj:
        """A merge patch of `spec`, applied only if the object is still at `resource_version`."""
        body = {"metadata": {"resourceVersion": resource_version}, "spec": spec}
        try:
            return self.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                body,
                _request_timeout=self.timeout,
            )
        except ApiException as error:
            if error.status == 409:
                raise Conflict(str(error.reason)) from None
            raise

    def patch_status(self, plural: str, namespace: str, name: str, status: Obj) -> None:
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"status": status},
                _request_timeout=self.timeout,
            )
        except ApiException as error:
            if not _not_found(error):
                raise

    # -- pods ----------------------------------------------------------------------------------

    def list_pods(self, namespace: str, selector: str) -> list[Obj]:
        response = self.core.list_namespaced_pod(
            namespace,
            label_selector=selector,
            _preload_content=False,
            _request_timeout=self.timeout,
        )
        return list(_json(response).get("items") or [])

    def create_pod(self, namespace: str, manifest: Obj) -> bool:
        """Create; False when a pod of that name exists already."""
        try:
            self.core.create_namespaced_pod(namespace, manifest, _request_timeout=self.timeout)
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def delete_pod(self, namespace: str, name: str, uid: str | None) -> bool:
        """Delete with the pod's own grace period; False when gone or replaced meanwhile."""
        options = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=uid) if uid else None)
        try:
            self.core.delete_namespaced_pod(
                name, namespace, body=options, _request_timeout=self.timeout
            )
        except ApiException as error:
            if error.status in (404, 409):
                return False
            raise
        return True

    def patch_pod(self, namespace: str, name: str, body: Obj) -> Obj | None:
        """A merge patch; None when the pod is gone (or replaced, when the body holds a uid)."""
        try:
            return _json(
                self.core.patch_namespaced_pod(
                    name,
                    namespace,
                    body,
                    _preload_content=False,
                    _request_timeout=self.timeout,
                )
            )
        except ApiException as error:
            if error.status in (404, 409):
                return None
            raise

    def read_secret_key(self, namespace: str, name: str, key: str) -> str | None:
        import base64

        try:
            secret = self.core.read_namespaced_secret(
                name, namespace, _request_timeout=self.timeout
            )
        except ApiException as error:
            if _not_found(error):
                return None
            raise
        raw = (secret.data or {}).get(key)
        return base64.b64decode(raw).decode().strip() if raw else None

    # -- events --------------------------------------------------------------------------------

    def event(self, obj: Obj, kind: str, reason: str, message: str, warning: bool = False) -> None:
        """Best effort: a core/v1 Event on `obj` (an event lost is only a log line lost)."""
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{meta.get('name', 'object')}.",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": kind,
                "name": meta.get("name"),
                "namespace": namespace,
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1000],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT, "host": socket.gethostname()},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": COMPONENT,
            "reportingInstance": socket.gethostname(),
        }
        try:
            self.core.create_namespaced_event(namespace, body, _request_timeout=self.timeout)
        except (ApiException, OSError) as error:
            log.debug("event %s on %s not posted: %s", reason, meta.get("name"), error)


AUTOSCALERS = AUTOSCALER_PLURAL
ELASTIC_WORKERS = ELASTIC_WORKER_PLURAL
