"""Fixtures for the resource-model tests: the prototype's manifests, fresh for each test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

DATA = Path(__file__).parent / "data"


def load_manifest(name: str) -> dict[str, Any]:
    return yaml.safe_load((DATA / name).read_text(encoding="utf-8"))


@pytest.fixture
def prototype_ew() -> dict[str, Any]:
    return load_manifest("prototype_elasticworker.yaml")


@pytest.fixture
def prototype_ewa() -> dict[str, Any]:
    return load_manifest("prototype_elasticworkerautoscaler.yaml")
