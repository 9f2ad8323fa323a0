"""The Airflow stack's recipe, without running Airflow: pins, URLs, settings, commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.e2e import airflow
from harness.e2e.airflow import (
    REQUIREMENTS_FILE,
    AirflowStack,
    celery_result_backend,
    install,
    pinned_version,
    requirements_hash,
    sql_alchemy_conn,
)


def _pins() -> dict[str, str]:
    pins = {}
    for line in REQUIREMENTS_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line!r}"
            pins[name.lower()] = version
    return pins


def test_requirements_pin_airflow_3_and_a_working_celery() -> None:
    pins = _pins()
    assert pins["apache-airflow"].startswith("3.")
    assert pins["apache-airflow-core"] == pins["apache-airflow"]
    for needed in ("apache-airflow-providers-celery", "apache-airflow-providers-postgres"):
        assert needed in pins
    for needed in ("kombu", "flower", "psycopg2-binary", "asyncpg"):
        assert needed in pins
    # Celery 5.7 breaks apache-airflow-providers-celery 3.26 (ImportError: ... 'retry').
    major, minor = (int(x) for x in pins["celery"].split(".")[:2])
    assert (major, minor) < (5, 7)
    assert pinned_version("celery") == pins["celery"]


def test_requirements_hash_names_the_file(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("x==1\n")
    b.write_text("x==2\n")
    assert re.fullmatch(r"[0-9a-f]{12}", requirements_hash(a))
    assert requirements_hash(a) == requirements_hash(a)
    assert requirements_hash(a) != requirements_hash(b)


def test_venv_dir_follows_xdg_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(airflow.VENV_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    expected = tmp_path / "elastic-airflow" / f"airflow-venv-{requirements_hash()}"
    assert airflow.default_venv_dir() == expected


def test_install_reuses_a_complete_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "airflow").write_text("#!/bin/false\n")
    (venv / airflow._COMPLETE_MARKER).write_text("{}")
    result = install(venv)
    assert result.venv == venv and not result.created


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@127.0.0.1:5432/db", "postgresql+psycopg2://u:p@127.0.0.1:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg2://u@h/db"),
    ],
)
def test_database_urls(url: str, expected: str) -> None:
    assert sql_alchemy_conn(url) == expected
    assert celery_result_backend(url) == "db+" + expected


def test_database_url_must_be_postgresql() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        sql_alchemy_conn("mysql://u@h/db")


def _stack(tmp_path: Path) -> AirflowStack:
    stack = AirflowStack(
        database_url="postgresql://u:p@127.0.0.1:5432/db",
        broker_url="amqp://guest:guest@127.0.0.1:5672//",
        dags_folder=tmp_path,
        work_dir=tmp_path / "work",
        venv=tmp_path / "venv",
        extra_env={"ELASTIC_AIRFLOW_OUTPUT": "/x"},
    )
    stack.api_port = 8123
    return stack


def test_settings_every_component_shares(tmp_path: Path) -> None:
    config = _stack(tmp_path).airflow_config()
    assert config["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert config["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert config["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "2"
    assert config["AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER"] == "1"
    assert config["AIRFLOW__CELERY__TASK_ACKS_LATE"] == "True"
    assert config["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    assert config["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8123/execution/"
    assert config["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert len(config["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 64


def test_worker_command_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    stack = _stack(tmp_path)
    command = stack.worker_command("w-7")
    assert command[0] == str(tmp_path / "venv" / "bin" / "airflow")
    assert command[1:3] == ["celery", "worker"]
    assert command[command.index("--celery-hostname") + 1] == "w-7"
    assert command[command.index("--queues") + 1] == "default"
    assert command[command.index("--concurrency") + 1] == "2"
    env = stack.worker_env("w-7")
    assert env["ELASTIC_AIRFLOW_POD"] == "w-7"
    assert env["ELASTIC_AIRFLOW_OUTPUT"] == "/x"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "PYTHONPATH" not in env
    assert env["PATH"].startswith(str(tmp_path / "venv" / "bin"))
    assert stack.celery_nodename("w-7") == "celery@w-7"
