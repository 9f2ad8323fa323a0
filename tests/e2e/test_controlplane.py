"""The local control plane is a real kube-apiserver: storage, CRDs, RBAC, clean stop."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from harness.e2e import kubebins
from harness.e2e.controlplane import LocalControlPlane

from .helpers import process_gone, wait_for

pytestmark = pytest.mark.controlplane

CRD_GROUP = "widgets.test.elastic-airflow.io"


def test_apiserver_is_ready_and_stores_objects(
    control_plane: LocalControlPlane, core_v1: client.CoreV1Api, namespace: str
) -> None:
    assert control_plane.get("/readyz") == (200, "ok")
    assert 0 < control_plane.startup_seconds < 60
    assert control_plane.kubeconfig_path.is_file()

    config_map = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="settings"), data={"answer": "42"}
    )
    core_v1.create_namespaced_config_map(namespace, config_map)

    stored = core_v1.read_namespaced_config_map("settings", namespace)
    assert stored.data == {"answer": "42"}
    assert stored.metadata.uid


def test_reports_the_pinned_kubernetes_version(admin_client: client.ApiClient) -> None:
    info = client.VersionApi(admin_client).get_code()
    if not os.environ.get(kubebins.ASSETS_ENV):
        assert info.git_version == kubebins.versions()["kube-apiserver"]
    assert info.major == "1"


def _widget_crd() -> dict[str, object]:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {"size": {"type": "integer", "minimum": 1}},
                "required": ["size"],
            }
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{CRD_GROUP}"},
        "spec": {
            "group": CRD_GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def _established(extensions: client.ApiextensionsV1Api, name: str) -> bool:
    crd = extensions.read_custom_resource_definition(name)
    conditions = (crd.status.conditions if crd.status else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def _create_widget(objects: client.CustomObjectsApi, namespace: str, size: int) -> None:
    body = {
        "apiVersion": f"{CRD_GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": f"w{size}"},
        "spec": {"size": size},
    }
    objects.create_namespaced_custom_object(CRD_GROUP, "v1", namespace, "widgets", body)


def test_crd_install_and_custom_object(admin_client: client.ApiClient, namespace: str) -> None:
    extensions = client.ApiextensionsV1Api(admin_client)
    extensions.create_custom_resource_definition(_widget_crd())
    name = f"widgets.{CRD_GROUP}"
    wait_for(lambda: _established(extensions, name), what="CRD Established")

    objects = client.CustomObjectsApi(admin_client)
    # Discovery of a fresh CRD can lag its Established condition by a moment.
    wait_for(lambda: _try_create_widget(objects, namespace), what="custom object accepted")
    widget = objects.get_namespaced_custom_object(CRD_GROUP, "v1", namespace, "widgets", "w3")
    assert widget["spec"] == {"size": 3}

    # The schema is enforced by the real apiserver, not by this test.
    with pytest.raises(ApiException) as rejected:
        _create_widget(objects, namespace, 0)
    assert rejected.value.status == 422


def _try_create_widget(objects: client.CustomObjectsApi, namespace: str) -> bool:
    try:
        _create_widget(objects, namespace, 3)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def _grant_config_map_reader(rbac: client.RbacAuthorizationV1Api, namespace: str) -> None:
    role = client.V1Role(
        metadata=client.V1ObjectMeta(name="config-reader"),
        rules=[
            client.V1PolicyRule(
                api_groups=[""], resources=["configmaps"], verbs=["get", "list", "watch"]
            )
        ],
    )
    rbac.create_namespaced_role(namespace, role)
    binding = client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="config-reader"),
        role_ref=client.V1RoleRef(
            api_group="rbac.authorization.k8s.io", kind="Role", name="config-reader"
        ),
        subjects=[
            client.RbacV1Subject(
                kind="Group", name="readers", api_group="rbac.authorization.k8s.io"
            )
        ],
    )
    rbac.create_namespaced_role_binding(namespace, binding)


def _status_of(call: Callable[[], object]) -> int:
    try:
        call()
    except ApiException as error:
        return int(error.status)
    return 200


def test_limited_user_is_forbidden_what_rbac_does_not_grant(
    control_plane: LocalControlPlane, admin_client: client.ApiClient, namespace: str
) -> None:
    _grant_config_map_reader(client.RbacAuthorizationV1Api(admin_client), namespace)
    kubeconfig = control_plane.kubeconfig_for("alice", ["readers"])
    alice = client.CoreV1Api(control_plane.api_client(kubeconfig))

    # The RBAC authoriser learns new bindings from a watch: allow it a moment.
    wait_for(
        lambda: _status_of(lambda: alice.list_namespaced_config_map(namespace)) == 200,
        what="alice allowed to list configmaps",
    )
    config_map = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="nope"))
    assert _status_of(lambda: alice.create_namespaced_config_map(namespace, config_map)) == 403
    assert _status_of(lambda: alice.list_namespaced_secret(namespace)) == 403
    assert _status_of(lambda: alice.list_namespaced_config_map("default")) == 403


def test_stop_ends_both_servers_even_on_error(tmp_path: Path) -> None:
    plane = LocalControlPlane()
    with pytest.raises(RuntimeError, match="boom"), plane:
        pids = plane.pids()
        workdir = plane.workdir
        assert set(pids) == {"etcd", "kube-apiserver"}
        raise RuntimeError("boom")
    assert all(process_gone(pid) for pid in pids.values())
    assert not workdir.exists()


def test_missing_assets_are_an_error_not_a_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(kubebins.ASSETS_ENV, str(tmp_path))
    with pytest.raises(kubebins.BinariesUnavailable, match="kube-apiserver"):
        kubebins.ensure_binaries()


def test_versions_are_read_from_the_go_modules() -> None:
    versions = kubebins.versions()
    assert versions["kube-apiserver"].startswith("v1.")
    assert versions["etcd"].startswith("v3.")
    assert kubebins.cache_dir().name == f"{versions['kube-apiserver']}-{versions['etcd']}"
