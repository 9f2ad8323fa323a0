"""A real Airflow 3 stack (CeleryExecutor) on private PostgreSQL and RabbitMQ.

The api-server, scheduler, dag-processor and flower run as private processes; one Celery
worker (`worker_command("w-0")`) runs the tasks. Nothing is faked: a missing Airflow venv,
PostgreSQL or RabbitMQ fails these tests, never skips them.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
import urllib.request
import uuid
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.e2e.airflow import AirflowStack, AirflowUnavailable, airflow_venv
from harness.e2e.airflow_api import AirflowAPI
from harness.e2e.dagfiles import read_output, write_dag_files
from harness.scenario import parse_scenario, sample_duration
from harness.services import LOOPBACK, PostgresServer, RabbitMQServer, spawn

pytestmark = [pytest.mark.services, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
STATIC_DAGS = REPO / "scenarios" / "dags"
RUNS = 3

QUICK = parse_scenario(
    {
        "name": "airflow-stack-test",
        "seed": 7,
        "duration": 120,
        "elasticWorker": {"minReplicas": 1, "maxReplicas": 1},
        "elasticWorkerAutoscaler": {"targetValue": 60},
        "dags": {
            "quick": {
                "tasks": [
                    {"duration": 2},
                    {"name": "after", "duration": {"uniform": {"low": 0.5, "high": 1.5}}},
                ]
            }
        },
    }
)


class Stack:
    def __init__(self, stack: AirflowStack, hi_file: Path, json_file: Path) -> None:
        self.stack, self.hi_file, self.json_file = stack, hi_file, json_file
        self.api: AirflowAPI = stack.api()
        self.worker: subprocess.Popen[bytes] | None = None


@pytest.fixture(scope="module")
def airflow(
    postgres_server: PostgresServer,
    rabbitmq_server: RabbitMQServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    try:
        venv = airflow_venv()
    except AirflowUnavailable as error:
        pytest.fail(f"Airflow venv unavailable: {error}", pytrace=False)
    # A database of its own: the session's PostgreSQL is shared with other tests.
    database = f"airflow_{uuid.uuid4().hex[:8]}"
    postgres_server.psql(f'CREATE DATABASE "{database}"', database="postgres")
    user, password, port = postgres_server.user, postgres_server.password, postgres_server.port
    database_url = f"postgresql://{user}:{password}@{LOOPBACK}:{port}/{database}"

    work = tmp_path_factory.mktemp("airflow")
    dags = work / "dags"
    dags.mkdir()
    for name in ("dag_1.py", "dag_2.py"):
        shutil.copy(STATIC_DAGS / name, dags / name)
    json_file = work / "quick.jsonl"
    write_dag_files(QUICK, dags, json_file)
    hi_file = work / "hi.txt"

    stack = AirflowStack(
        database_url=database_url,
        broker_url=rabbitmq_server.url,
        dags_folder=dags,
        work_dir=work / "stack",
        venv=venv,
        extra_env={"ELASTIC_AIRFLOW_OUTPUT": str(hi_file)},
    )
    with stack:
        rss = sum(stack.rss_bytes().values())
        print(
            f"\nAirflow stack up in {stack.startup_seconds:.1f} s "
            f"(db migrate {stack.migrate_seconds:.1f} s), RSS {rss / 2**20:.0f} MiB"
        )
        yield Stack(stack, hi_file, json_file)


@pytest.fixture(scope="module")
def worker(airflow: Stack) -> Iterator[subprocess.Popen[bytes]]:
    """One Celery worker for pod `w-0`, run exactly as an e2e pod would run it."""
    stack = airflow.stack
    proc = spawn(
        "worker-w-0",
        stack.worker_command("w-0"),
        log_path=stack.logs_dir / "worker-w-0.log",
        env=stack.worker_env("w-0"),
        cwd=stack.work_dir,
    )
    try:
        deadline = time.monotonic() + 90
        while b"celery@w-0 ready." not in proc.log_path.read_bytes():
            assert proc.alive, f"worker exited with {proc.proc.returncode}:\n{proc.log_tail()}"
            assert time.monotonic() < deadline, f"worker not ready:\n{proc.log_tail()}"
            time.sleep(0.2)
        rss = sum(stack.rss_bytes().values()) + _rss(proc.pid)
        print(f"\nworker w-0 ready; stack + worker RSS {rss / 2**20:.0f} MiB")
        yield proc.proc
    finally:
        code = proc.stop(30)
        print(f"\nworker w-0 stopped (exit {code})")


def _rss(session: int) -> int:
    from harness.e2e.airflow import _session_rss

    return _session_rss({session})[session]


def _trigger(api: AirflowAPI, dag_id: str, count: int, conf: dict | None = None) -> list[str]:
    api.wait_for_dag(dag_id, timeout=120)
    api.unpause(dag_id)
    run_ids = []
    for i in range(count):
        run_id = f"test-{dag_id}-{i}-{uuid.uuid4().hex[:6]}"
        answer = api.trigger(dag_id, run_id=run_id, conf=conf)
        assert answer["dag_run_id"] == run_id
        assert answer["state"] in ("queued", "running")
        run_ids.append(run_id)
    return run_ids


def test_stack_is_healthy_and_authenticated(airflow: Stack) -> None:
    health = airflow.api.health()
    for component in ("metadatabase", "scheduler", "dag_processor"):
        assert health[component]["status"] == "healthy", health
    assert airflow.api.version()["version"].startswith("3.")
    # Every DAG file parses under Airflow 3 (an import error fails the wait at once).
    parsed = airflow.api.wait_for_dags(["dag_1", "dag_2", "quick"], timeout=120)
    assert not any(dag["is_paused"] for dag in parsed.values())
    assert airflow.api.import_errors() == []
    assert airflow.stack.flower_url is not None


def test_dag_2_runs_append_one_line_each(airflow: Stack, worker: subprocess.Popen) -> None:
    started = time.monotonic()
    run_ids = _trigger(airflow.api, "dag_2", RUNS, conf={"sleep": 2})
    states = airflow.api.wait_for_runs([("dag_2", r) for r in run_ids], timeout=240)
    elapsed = time.monotonic() - started
    print(f"\n{RUNS} runs of dag_2 finished in {elapsed:.1f} s: {states}")
    assert set(states.values()) == {"success"}, (states, airflow.stack.log_tails())
    assert airflow.hi_file.read_text().splitlines() == ["HI"] * RUNS
    for run_id in run_ids:
        (ti,) = airflow.api.task_instances("dag_2", run_id)
        assert ti["state"] == "success"
        assert ti["try_number"] == 1


def test_generated_scenario_dag(airflow: Stack, worker: subprocess.Popen) -> None:
    run_ids = _trigger(airflow.api, "quick", RUNS)
    states = airflow.api.wait_for_runs([("quick", r) for r in run_ids], timeout=240)
    assert set(states.values()) == {"success"}, (states, airflow.stack.log_tails())

    records = read_output(airflow.json_file)
    assert len(records) == 2 * RUNS
    by_run: dict[str, dict[str, dict]] = {}
    for record in records:
        by_run.setdefault(record["run_id"], {})[record["task_id"]] = record
    assert set(by_run) == set(run_ids)
    durations = [t.duration for t in QUICK.dags["quick"].tasks]
    for run_id, tasks in by_run.items():
        assert set(tasks) == {"task_1", "after"}
        # In sequence: the second task starts after the first one has finished.
        assert tasks["after"]["started"] >= tasks["task_1"]["finished"]
        for task_id, duration in zip(("task_1", "after"), durations, strict=True):
            record = tasks[task_id]
            assert record["pod"] == "w-0"
            assert record["try_number"] == 1
            # The same draw as the simulator's, seeded by scenario seed, dag, run and task.
            rng = random.Random(f"{QUICK.seed}:quick:{run_id}:{task_id}")
            assert record["duration"] == pytest.approx(sample_duration(duration, rng))
            assert record["finished"] - record["started"] >= record["duration"] - 0.01


def test_flower_sees_the_worker(airflow: Stack, worker: subprocess.Popen) -> None:
    user, password = airflow.stack.flower_basic_auth
    request = urllib.request.Request(
        f"{airflow.stack.flower_url}/api/workers?refresh=1",
        headers={"Authorization": "Basic " + b64encode(f"{user}:{password}".encode()).decode()},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        workers = json.loads(response.read())
    assert "celery@w-0" in workers, workers
    queues = workers["celery@w-0"].get("active_queues") or []
    assert [q["name"] for q in queues] == ["default"]
