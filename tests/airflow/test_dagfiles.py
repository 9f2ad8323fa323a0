"""The DAG file generator, without Airflow: what it writes and how it draws durations."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.e2e import dagfiles
from harness.e2e.dagfiles import dag_file_text, read_output, write_dag_files
from harness.scenario import Scenario, parse_scenario, sample_duration

DURATIONS = [
    30,
    {"constant": 4.5},
    {"uniform": {"low": 1, "high": 9}},
    {"exponential": {"mean": 20}},
    {"lognormal": {"mean": 300, "sigma": 0.5}},
]
STATIC_DAGS = Path(__file__).resolve().parents[2] / "scenarios" / "dags"


def scenario(dags: dict, **extra: object) -> Scenario:
    return parse_scenario(
        {
            "name": "gen",
            "duration": 60,
            "elasticWorker": {"minReplicas": 1, "maxReplicas": 2},
            "elasticWorkerAutoscaler": {"targetValue": 60},
            "dags": dags,
            **extra,
        }
    )


@pytest.mark.parametrize("raw", DURATIONS)
def test_sampler_draws_what_the_simulator_draws(raw: object) -> None:
    duration = scenario({"d": {"tasks": [{"duration": raw}]}}).dags["d"].tasks[0].duration
    spec = dagfiles.duration_spec(duration)
    json.dumps(spec)  # plain JSON, embeddable in a DAG file
    for seed in ("1:d:run-a:task_1", "1:d:run-b:task_1", "7:x:y:z"):
        expected = sample_duration(duration, random.Random(seed))
        assert dagfiles._sample_duration(spec, random.Random(seed)) == pytest.approx(expected)


def test_dag_file_is_valid_python_with_tasks_in_order(tmp_path: Path) -> None:
    sc = scenario(
        {"long": {"tasks": [{"duration": 3}, {"name": "second", "duration": {"constant": 1}}]}},
        seed=5,
        cluster={"task_retries": 2},
    )
    text = dag_file_text(sc, "long", tmp_path / "out.jsonl")
    compile(text, "long.py", "exec")
    assert "from airflow.sdk import DAG" in text
    assert "schedule=None" in text and "catchup=False" in text
    assert "SEED = 5" in text and "retries=2" in text
    assert repr(str(tmp_path / "out.jsonl")) in text
    tasks_line = next(line for line in text.splitlines() if line.startswith("TASKS = "))
    namespace: dict = {"json": json}
    exec(tasks_line, namespace)
    tasks = namespace["TASKS"]
    assert tasks == [
        {"task_id": "task_1", "duration": 3.0},
        {"task_id": "second", "duration": {"constant": 1.0}},
    ]


def test_write_dag_files_writes_one_file_per_dag(tmp_path: Path) -> None:
    sc = scenario({"a": {"tasks": [{"duration": 1}]}, "b.c-d": {"tasks": [{"duration": 2}]}})
    paths = write_dag_files(sc, tmp_path / "dags", tmp_path / "out")
    assert sorted(p.name for p in paths) == ["a.py", "b.c-d.py"]
    assert sorted(p.name for p in (tmp_path / "dags").iterdir()) == ["a.py", "b.c-d.py"]


@pytest.mark.parametrize(
    ("dags", "message"),
    [
        ({"has space": {"tasks": [{"duration": 1}]}}, "not valid"),
        ({"d": {"tasks": [{"name": "x/y", "duration": 1}]}}, "not valid"),
        ({"d": {"tasks": [{"name": "t", "duration": 1}, {"name": "t", "duration": 1}]}}, "dup"),
    ],
)
def test_bad_ids_are_refused(tmp_path: Path, dags: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_dag_files(scenario(dags), tmp_path, tmp_path / "out")


def test_task_body_appends_one_json_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELASTIC_AIRFLOW_POD", "w-3")
    out = tmp_path / "out.jsonl"
    context = {
        "run_id": "r1",
        "dag_run": SimpleNamespace(conf={"durations": {"t": 0.01}}),
        "ti": SimpleNamespace(try_number=2),
    }
    dagfiles._run_task("d", "t", {"constant": 100}, 1, str(out), context)
    dagfiles._run_task("d", "t", {"constant": 100}, 1, str(out), context)
    records = read_output(out)
    assert len(records) == 2
    assert records[0]["pod"] == "w-3" and records[0]["try_number"] == 2
    assert records[0]["duration"] == 0.01  # the run's conf wins over the drawn duration
    assert records[0]["finished"] >= records[0]["started"]
    assert read_output(tmp_path / "missing") == []


@pytest.mark.parametrize("name", ["dag_1.py", "dag_2.py"])
def test_static_dags_compile(name: str) -> None:
    text = (STATIC_DAGS / name).read_text()
    compile(text, name, "exec")
    assert f'dag_id="{name[:-3]}"' in text
