"""Fixtures for tests against a real local kube-apiserver (no Docker, no fakes).

The session fixtures are per pytest-xdist worker: each worker starts its own
etcd and kube-apiserver on free ports. Missing binaries fail the tests, never
skip them: a green run must mean the operators met a real API server.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from kubernetes import client

from harness.e2e.controlplane import LocalControlPlane
from harness.e2e.kubebins import BinariesUnavailable, ensure_binaries
from harness.e2e.nodeagent import NodeAgent

_namespace_ids = itertools.count()


@pytest.fixture(scope="session")
def control_plane() -> Iterator[LocalControlPlane]:
    """A running etcd + kube-apiserver, admin kubeconfig at `.kubeconfig_path`."""
    try:
        binaries = ensure_binaries()
    except BinariesUnavailable as error:
        pytest.fail(f"kube-apiserver/etcd unavailable: {error}", pytrace=False)
    with LocalControlPlane(binaries_dir=binaries) as plane:
        yield plane


@pytest.fixture(scope="session")
def admin_client(control_plane: LocalControlPlane) -> client.ApiClient:
    return control_plane.api_client()


@pytest.fixture(scope="session")
def core_v1(admin_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(admin_client)


@pytest.fixture(scope="session")
def node_agent(control_plane: LocalControlPlane) -> Iterator[NodeAgent]:
    """The kubelet stand-in for node `local`, shared by the session."""
    agent = NodeAgent(control_plane.api_client()).start()
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture
def namespace(core_v1: client.CoreV1Api) -> str:
    """A fresh namespace per test.

    Never deleted: without a controller-manager a namespace stays Terminating
    forever, and the cluster dies with the session anyway.
    """
    name = f"t{os.getpid()}-{next(_namespace_ids)}"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name
