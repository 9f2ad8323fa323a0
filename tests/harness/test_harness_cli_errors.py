"""Bad input: exit code 2, a one-line message naming the file and the key, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import harness
from harness.cli import main

REPO = Path(harness.__file__).resolve().parent.parent

# name -> (top-level overrides or raw text, the key the message must name)
BAD_SCENARIOS = {
    "unknown_key": ({"bogus": 1}, "bogus"),
    "wrong_type": ({"duration": "long"}, "duration"),
    "wrong_nested_type": (
        {"cluster": {"worker_concurrency": "two"}},
        "cluster.worker_concurrency",
    ),
    "unknown_dag": ({"workload": [{"at": 0, "dag": "nope", "count": 1}]}, "workload.0.dag"),
    "unknown_policy": ({"policy": "yolo"}, "policy"),
    "negative_duration": ({"duration": -5}, "duration"),
    "unknown_expect_key": ({"expect": {"happiness": 1}}, "expect.happiness"),
}


def _outputs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "out" / "summary.json", tmp_path / "out" / "html"


def _argv(command: str, scenario: Path, json_path: Path, html_dir: Path) -> list[str]:
    if command == "sweep":
        return ["sweep", str(scenario), "--jobs", "1", "--html", str(html_dir)]
    return [command, str(scenario), "--json", str(json_path), "--html", str(html_dir)]


def _assert_nothing_written(tmp_path: Path) -> None:
    json_path, html_dir = _outputs(tmp_path)
    assert not json_path.exists()
    assert not html_dir.exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["sim", "sweep", "e2e"])
@pytest.mark.parametrize("case", sorted(BAD_SCENARIOS))
def test_bad_scenario_exits_2_and_names_file_and_key(
    command, case, write_scenario, fake_sim, tmp_path, capsys
):
    overrides, key = BAD_SCENARIOS[case]
    path = write_scenario(f"{case}.yaml", **overrides)
    json_path, html_dir = _outputs(tmp_path)

    assert main(_argv(command, path, json_path, html_dir)) == 2

    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"{path}: {key}: "), err
    assert fake_sim.calls == []
    _assert_nothing_written(tmp_path)


@pytest.mark.parametrize("command", ["sim", "sweep", "e2e"])
def test_missing_file_exits_2(command, fake_sim, tmp_path, capsys):
    path = tmp_path / "absent.yaml"
    json_path, html_dir = _outputs(tmp_path)
    assert main(_argv(command, path, json_path, html_dir)) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "cannot read" in err
    assert fake_sim.calls == []
    _assert_nothing_written(tmp_path)


@pytest.mark.parametrize("command", ["sim", "sweep", "e2e"])
def test_invalid_yaml_exits_2(command, write_scenario, fake_sim, tmp_path, capsys):
    path = write_scenario("broken.yaml", text="name: broken\ndags: {a: [1, 2\n")
    json_path, html_dir = _outputs(tmp_path)
    assert main(_argv(command, path, json_path, html_dir)) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "not valid YAML" in err
    assert fake_sim.calls == []
    _assert_nothing_written(tmp_path)


def test_not_a_mapping_exits_2(write_scenario, fake_sim, tmp_path, capsys):
    path = write_scenario("list.yaml", text="- 1\n- 2\n")
    json_path, html_dir = _outputs(tmp_path)
    assert main(_argv("sim", path, json_path, html_dir)) == 2
    assert str(path) in capsys.readouterr().err
    _assert_nothing_written(tmp_path)


def test_sim_unknown_policy_option_exits_2(write_scenario, fake_sim, tmp_path, capsys):
    path = write_scenario()
    json_path, html_dir = _outputs(tmp_path)
    argv = [*_argv("sim", path, json_path, html_dir), "--policy", "yolo"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--policy" in err and "'yolo'" in err
    assert "drain, seed, hpa, keda" in err
    assert fake_sim.calls == []
    _assert_nothing_written(tmp_path)


@pytest.mark.parametrize("policies", ["drain,yolo", "yolo", ",", ""])
def test_sweep_unknown_policy_option_exits_2(policies, write_scenario, fake_sim, tmp_path, capsys):
    path = write_scenario()
    json_path, html_dir = _outputs(tmp_path)
    argv = [*_argv("sweep", path, json_path, html_dir), "--policy", policies]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--policy" in err and "drain, seed, hpa, keda" in err
    assert fake_sim.calls == []
    _assert_nothing_written(tmp_path)


@pytest.mark.parametrize("option", [["--seeds", "0"], ["--jobs", "-1"]])
def test_sweep_bad_counts_exit_2(option, write_scenario, fake_sim, tmp_path, capsys):
    path = write_scenario()
    json_path, html_dir = _outputs(tmp_path)
    assert main(_argv("sweep", path, json_path, html_dir) + option) == 2
    assert option[0] in capsys.readouterr().err
    assert fake_sim.calls == []
    _assert_nothing_written(tmp_path)


def test_sweep_validates_every_file_before_running_any(write_scenario, fake_sim, tmp_path, capsys):
    good = write_scenario("good.yaml")
    bad1 = write_scenario("bad1.yaml", bogus=1)
    bad2 = write_scenario("bad2.yaml", duration=-1)
    _, html_dir = _outputs(tmp_path)
    argv = ["sweep", str(good), str(bad1), str(bad2), "--jobs", "1", "--html", str(html_dir)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{bad1}: bogus: " in err
    assert f"{bad2}: duration: " in err
    assert fake_sim.calls == []
    _assert_nothing_written(tmp_path)


def test_sweep_rejects_two_files_with_one_name(write_scenario, fake_sim, tmp_path, capsys):
    a = write_scenario("a.yaml", name="same")
    b = write_scenario("b.yaml", name="same")
    assert main(["sweep", str(a), str(b), "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{b}: name: " in err and str(a) in err
    assert fake_sim.calls == []


def test_sweep_empty_directory_or_pattern_exits_2(tmp_path, fake_sim, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["sweep", str(empty)]) == 2
    assert str(empty) in capsys.readouterr().err
    pattern = str(tmp_path / "nothing-*.yaml")
    assert main(["sweep", pattern]) == 2
    assert pattern in capsys.readouterr().err
    assert fake_sim.calls == []


def test_help_lists_the_three_commands():
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-m", "harness", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=True,
    ).stdout
    for command in ("sim", "sweep", "e2e"):
        assert command in out
    assert "elastic-airflow" in out
