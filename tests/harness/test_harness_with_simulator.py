"""The command line on the real simulator (`harness.sim.simulate`), imported lazily.

These fail with an ImportError until the simulator exists; they are not skipped, so that a
missing or broken simulator never looks like a pass.
"""

from __future__ import annotations

import json

from harness.cli import main
from harness.scenario import SUMMARY_KEYS

NEVER = {"tasks_completed": {"ge": 999999}}


def require_simulator() -> None:
    from harness.sim import simulate  # noqa: F401


def test_sim_tiny_drain_scenario_passes(write_scenario, tmp_path):
    require_simulator()
    out = tmp_path / "run.json"
    html_dir = tmp_path / "html"
    rc = main(["sim", str(write_scenario()), "--json", str(out), "--html", str(html_dir)])
    summary = json.loads(out.read_text())
    assert rc == 0, summary["expect_failures"]
    assert list(summary) == list(SUMMARY_KEYS)
    assert summary["policy"] == "drain" and summary["seed"] == 7
    assert summary["tasks_completed"] == 4
    assert summary["busy_worker_terminations"] == 0 and summary["tasks_lost"] == 0
    assert (html_dir / "index.html").exists()


def test_sim_exit_1_when_an_expectation_fails(write_scenario, tmp_path):
    require_simulator()
    out = tmp_path / "run.json"
    assert main(["sim", str(write_scenario(expect=NEVER)), "--json", str(out)]) == 1
    failures = json.loads(out.read_text())["expect_failures"]
    assert len(failures) == 1 and failures[0].startswith("tasks_completed = ")


def test_sim_is_deterministic_for_a_seed(write_scenario, tmp_path):
    require_simulator()
    path = write_scenario()
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    main(["sim", str(path), "--seed", "3", "--policy", "hpa", "--json", str(a)])
    main(["sim", str(path), "--seed", "3", "--policy", "hpa", "--json", str(b)])
    first, second = json.loads(a.read_text()), json.loads(b.read_text())
    first.pop("wall_seconds"), second.pop("wall_seconds")
    assert first == second


def test_sweep_two_seeds_two_policies_in_parallel(write_scenario, tmp_path):
    require_simulator()
    html_dir = tmp_path / "sweep"
    argv = ["sweep", str(write_scenario()), "--seeds", "2", "--policy", "drain,seed"]
    rc = main([*argv, "--jobs", "2", "--html", str(html_dir)])
    assert rc == 0
    summaries = json.loads((html_dir / "summary.json").read_text())
    assert len(summaries) == 4
    assert sorted((s["policy"], s["seed"]) for s in summaries) == [
        ("drain", 7),
        ("drain", 8),
        ("seed", 7),
        ("seed", 8),
    ]
    page = (html_dir / "index.html").read_text()
    assert "tiny" in page and 'src="http' not in page
    assert (html_dir / "summary.csv").exists()


def test_sweep_exit_1_only_when_drain_misses_an_expectation(write_scenario, tmp_path):
    require_simulator()
    path = write_scenario(expect=NEVER)
    assert main(["sweep", str(path), "--policy", "drain,hpa", "--jobs", "2"]) == 1
    # The same failing expectation under peer policies only is information, not a failure.
    assert main(["sweep", str(path), "--policy", "hpa,keda", "--jobs", "2"]) == 0
