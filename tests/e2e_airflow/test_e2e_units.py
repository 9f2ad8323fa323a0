"""The e2e runner's parts that need no cluster: refusals before anything starts, the workload
plan against the simulator's, the auditor's replay of a worker's events, how a process ended."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness.cli import main
from harness.e2e.auditor import Auditor, PodTrack, _CeleryEvent
from harness.e2e.providers import ProcessEnd, ProviderUnavailable, get_provider, resolve
from harness.e2e.runner import plan_workload, unsupported
from harness.scenario import load_scenario, parse_scenario
from harness.services import pid_alive

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


BASE = """\
name: t
duration: 100
elasticWorker: {minReplicas: 1, maxReplicas: 2}
elasticWorkerAutoscaler: {targetValue: 60}
dags: {d: {tasks: [{duration: 1}]}}
"""


@pytest.fixture
def nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run was started")

    monkeypatch.setattr("harness.e2e.runner.run_scenario", refuse)


@pytest.mark.usefixtures("nothing_starts")
def test_a_fault_the_cluster_cannot_inject_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, BASE + "faults: [{at: 5, kind: hook_timeout}]\n")
    assert main(["e2e", str(path), "--cluster", "local", "--json", str(tmp_path / "j")]) == 2
    err = capsys.readouterr().err
    assert "faults.0.kind" in err and "not supported in e2e yet" in err
    assert not (tmp_path / "j").exists()


@pytest.mark.usefixtures("nothing_starts")
def test_another_policy_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, BASE + "policy: seed\n")
    assert main(["e2e", str(path), "--cluster", "local"]) == 2
    assert "policy" in capsys.readouterr().err


def test_a_bad_scenario_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, BASE.replace("duration: 100", "duration: -1"))
    assert main(["e2e", str(path)]) == 2
    assert "duration" in capsys.readouterr().err


@pytest.mark.usefixtures("nothing_starts")
@pytest.mark.parametrize("name", ["kind", "minikube"])
def test_a_provider_that_cannot_run_here_says_why(
    name: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no kind, no minikube, no docker
    with pytest.raises(ProviderUnavailable, match=f"--cluster {name}"):
        get_provider(name)
    path = _write(tmp_path, BASE)
    assert main(["e2e", str(path), "--cluster", name]) == 3
    assert f"--cluster {name}" in capsys.readouterr().err


def test_auto_is_local_without_docker_and_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.e2e.providers.shutil.which", lambda name: None)
    assert resolve("auto") == "local"
    assert get_provider("local").name == "local"


def test_the_demo_scenarios_can_run() -> None:
    for name in ("seed-safe-scale-in", "seed-scale-out"):
        assert unsupported(load_scenario(SCENARIOS / f"{name}.yaml")) == []


def test_the_workload_is_the_simulators(tmp_path: Path) -> None:
    """Same runs, same times, same per-run durations as the simulator draws."""
    from harness.sim import simulate

    scenario = parse_scenario(
        {
            "name": "w",
            "seed": 5,
            "duration": 400,
            "cluster": {"scheduler_latency": 1.0},
            "elasticWorker": {"minReplicas": 8, "maxReplicas": 8},
            "elasticWorkerAutoscaler": {"targetValue": 60},
            "dags": {
                "a": {"tasks": [{"duration": {"exponential": {"mean": 3}}}]},
                "b": {"tasks": [{"duration": 2}, {"name": "x", "duration": 1}]},
            },
            "workload": [
                {"at": 10, "dag": "b", "count": 3},
                {"poisson": {"rate": 0.05, "start": 0, "end": 300}, "dag": "a"},
            ],
        }
    )
    plan = plan_workload(scenario)
    sim = simulate(scenario).tasks
    first = sim[(sim["task"].isin(["task_1"])) & (sim["try_number"] == 1)]
    assert len(plan) == len(first)
    for trig in plan:
        row = first[(first["dag"] == trig.dag) & (first["run"] == trig.number)]
        assert len(row) == 1
        queued = float(row["queued_at"].iloc[0])
        assert math.isclose(queued, trig.at + 1.0, abs_tol=1e-6)
        if trig.dag == "a":  # a run's duration is what the simulated worker was busy with
            ran = float(row["ended_at"].iloc[0] - row["started_at"].iloc[0])
            assert math.isclose(ran, trig.durations["task_1"], abs_tol=2e-3)
    assert [t.run_id for t in plan if t.dag == "b"] == [f"e2e__b__{i:04d}" for i in (1, 2, 3)]


def test_the_auditor_replays_a_workers_tasks_at_a_moment() -> None:
    auditor = Auditor.__new__(Auditor)
    auditor._lock = __import__("threading").RLock()
    host = "celery@w-1"
    auditor.celery = [
        _CeleryEvent(10.0, 10.1, "task-received", host, "a"),
        _CeleryEvent(10.2, 10.3, "task-started", host, "a"),
        _CeleryEvent(11.0, 11.1, "task-received", host, "b"),
        _CeleryEvent(15.0, 15.1, "task-succeeded", host, "a"),
        _CeleryEvent(12.0, 12.1, "task-received", "celery@other", "c"),
    ]
    assert auditor.worker_tasks_at("w-1", 9.0) == (0, 0)
    assert auditor.worker_tasks_at("w-1", 10.1) == (0, 1)
    assert auditor.worker_tasks_at("w-1", 12.0) == (1, 1)
    assert auditor.worker_tasks_at("w-1", 16.0) == (0, 1)


def test_how_a_process_ended() -> None:
    assert ProcessEnd(5.0, None, 7.0, 0, 0).ended_by == "SIGTERM"
    assert ProcessEnd(5.0, 35.0, 35.1, 137, 0).ended_by == "SIGKILL"
    assert ProcessEnd(None, None, 7.0, 1, 0).ended_by == "exit"
    assert ProcessEnd(None, None, None, None, 0).ended_by == "running"


def test_pod_track_states() -> None:
    pod = PodTrack("w", "u", 0.0, 0.0, phase="Running")
    assert pod.live and pod.running
    pod.deletion_at = 3.0
    assert not pod.live and pod.deleting
    assert not pid_alive(2**22 + 7)
