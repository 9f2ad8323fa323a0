"""Fixtures for the kind-config checks: the rendered manifests (kustomize) and, for the
server-side dry-runs, the local kube-apiserver of tests/e2e/conftest.py."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e.conftest import admin_client, control_plane

from harness.e2e.kube_providers import prepare_work_tree

__all__ = ["admin_client", "control_plane"]

REPO = Path(__file__).resolve().parents[2]
KIND_CONFIG = REPO / "kind-config"
KUSTOMIZE_VERSION = "v5.5.0"
# Entry points a user or a provider applies with `kubectl apply -k`.
ENTRY_POINTS = ("base", "overlays/kind", "overlays/minikube", ".")


def kustomize_command() -> list[str]:
    """`kustomize build`, else kubectl's built-in `kubectl kustomize`, else kustomize built
    from the Go module proxy (`go run`, cached by Go); fails the test when none is there."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("go"):
        return ["go", "run", f"sigs.k8s.io/kustomize/kustomize/v5@{KUSTOMIZE_VERSION}", "build"]
    pytest.fail("no kustomize: install kubectl (it has kustomize built in) or Go", pytrace=False)


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl apply -k directory` would send."""
    result = subprocess.run(
        [*kustomize_command(), str(directory)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"kustomize {directory}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def work_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of kind-config/ with the adapter's certificate (as the providers make it)."""
    return prepare_work_tree(tmp_path_factory.mktemp("kind-config-copy"))


@pytest.fixture(scope="session")
def rendered(work_tree: Path) -> Callable[[str], list[dict[str, Any]]]:
    cache: dict[str, list[dict[str, Any]]] = {}

    def get(entry: str) -> list[dict[str, Any]]:
        if entry not in cache:
            cache[entry] = render(work_tree / entry)
        return cache[entry]

    return get
