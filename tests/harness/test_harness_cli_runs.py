"""sim / sweep / e2e with a stand-in simulator: exit codes, summary JSON, outputs, parallel plan."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from harness import commands
from harness.cli import main
from harness.scenario import SUMMARY_KEYS

NEVER = {"tasks_completed": {"ge": 999999}}


def test_sim_json_has_exactly_the_design_keys_in_order(write_scenario, fake_sim, tmp_path):
    path = write_scenario()
    out = tmp_path / "deep" / "run.json"
    assert main(["sim", str(path), "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert list(summary) == list(SUMMARY_KEYS)
    assert summary["scenario"] == "tiny"
    assert summary["policy"] == "drain"
    assert summary["seed"] == 7  # the scenario's
    assert summary["expect_failures"] == []


def test_sim_passes_policy_and_seed_and_skips_tables_without_html(write_scenario, fake_sim):
    path = write_scenario()
    assert main(["sim", str(path), "--policy", "keda", "--seed", "42"]) == 0
    assert fake_sim.calls == [("tiny", "keda", 42, False)]


def test_sim_prints_a_summary_table_and_pass(write_scenario, fake_sim, capsys):
    assert main(["sim", str(write_scenario())]) == 0
    out = capsys.readouterr().out
    assert "busy_worker_terminations" in out
    assert "wait_p95" in out
    assert "PASS: all 2 expectations hold" in out


def test_sim_exit_1_lists_failures(write_scenario, fake_sim, tmp_path, capsys):
    fake_sim.busy["seed"] = 2
    path = write_scenario()
    out = tmp_path / "run.json"
    assert main(["sim", str(path), "--policy", "seed", "--json", str(out)]) == 1
    text = capsys.readouterr().out
    assert "busy_worker_terminations = 2, expected 0" in text
    assert "FAIL" in text
    summary = json.loads(out.read_text())
    assert summary["busy_worker_terminations"] == 2
    assert any(f.startswith("busy_worker_terminations") for f in summary["expect_failures"])


def test_sim_html_writes_one_page(write_scenario, fake_sim, tmp_path):
    html_dir = tmp_path / "report"
    assert main(["sim", str(write_scenario()), "--html", str(html_dir)]) == 0
    assert fake_sim.calls[0][3] is True  # tables kept for the report
    page = (html_dir / "index.html").read_text()
    assert "tiny" in page and 'class="banner green"' in page
    assert sorted(p.name for p in html_dir.iterdir()) == ["index.html"]


def _sweep(paths, tmp_path, *extra):
    html_dir = tmp_path / "sweep"
    argv = ["sweep", *map(str, paths), "--jobs", "1", "--html", str(html_dir), *extra]
    return main(argv), html_dir


def test_sweep_two_seeds_two_policies(write_scenario, fake_sim, tmp_path):
    rc, html_dir = _sweep([write_scenario()], tmp_path, "--seeds", "2", "--policy", "drain,seed")
    assert rc == 0
    summaries = json.loads((html_dir / "summary.json").read_text())
    assert len(summaries) == 4
    assert all(list(s) == list(SUMMARY_KEYS) for s in summaries)
    assert [(s["policy"], s["seed"]) for s in summaries] == [
        ("drain", 7),
        ("drain", 8),
        ("seed", 7),
        ("seed", 8),
    ]
    csv = pd.read_csv(html_dir / "summary.csv")
    assert len(csv) == 4 and list(csv.columns) == list(SUMMARY_KEYS)
    assert (html_dir / "index.html").exists()
    # Only the first seed of each scenario x policy keeps its tables.
    assert sorted(fake_sim.calls) == [
        ("tiny", "drain", 7, True),
        ("tiny", "drain", 8, False),
        ("tiny", "seed", 7, True),
        ("tiny", "seed", 8, False),
    ]


def test_sweep_defaults_to_all_four_policies(write_scenario, fake_sim):
    assert main(["sweep", str(write_scenario()), "--jobs", "1"]) == 0
    assert [c[1] for c in fake_sim.calls] == ["drain", "seed", "hpa", "keda"]


def test_sweep_exit_0_when_only_peers_miss_expectations(write_scenario, fake_sim, tmp_path, capsys):
    fake_sim.busy.update(seed=1, hpa=2)
    rc, html_dir = _sweep([write_scenario()], tmp_path)
    assert rc == 0
    out = capsys.readouterr().out
    assert "information" in out and "tiny / seed" in out and "tiny / hpa" in out
    assert "PASS" in out
    page = (html_dir / "index.html").read_text()
    assert 'class="banner red"' in page  # busy terminations are shown, whoever made them


def test_sweep_exit_1_when_drain_misses_an_expectation(write_scenario, fake_sim, tmp_path, capsys):
    rc, html_dir = _sweep([write_scenario(expect=NEVER)], tmp_path, "--policy", "drain,hpa")
    assert rc == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "tasks_completed" in out
    assert (html_dir / "summary.json").exists()


def test_sweep_prints_one_table_grouped_by_scenario_and_policy(write_scenario, fake_sim, capsys):
    a, b = write_scenario("a.yaml"), write_scenario("b.yaml")
    assert main(["sweep", str(a), str(b), "--seeds", "3", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    for column in ("runs", "busy terms", "killed", "lost", "wait p95 mean", "worker-s mean"):
        assert column in header
    assert "expect fail" in header
    table = out.split("\n\n")[0].splitlines()
    rows = [line.split() for line in table if "drain" in line or "keda" in line]
    assert [r[0] for r in rows] == ["a", "keda", "b", "keda"]  # one row per scenario x policy
    assert [r[-7] for r in rows] == ["3"] * 4  # runs


def test_sweep_accepts_a_directory_and_a_pattern(write_scenario, fake_sim, tmp_path):
    write_scenario("one.yaml")
    write_scenario("two.yaml")
    assert main(["sweep", str(tmp_path), "--policy", "drain", "--jobs", "1"]) == 0
    assert sorted(c[0] for c in fake_sim.calls) == ["one", "two"]
    fake_sim.calls.clear()
    assert main(["sweep", str(tmp_path / "t*.yaml"), "--policy", "drain", "--jobs", "1"]) == 0
    assert [c[0] for c in fake_sim.calls] == ["two"]


def test_sweep_reports_a_crashed_run_and_keeps_the_others(
    write_scenario, fake_sim, monkeypatch, tmp_path, capsys
):
    import harness.sim

    def flaky(scenario, policy=None, seed=None, *, tables=True):
        if policy == "hpa":
            raise RuntimeError("boom")
        return fake_sim(scenario, policy, seed, tables=tables)

    monkeypatch.setattr(harness.sim, "simulate", flaky)
    rc, html_dir = _sweep([write_scenario()], tmp_path)
    assert rc == 1
    err = capsys.readouterr().err
    assert "tiny / hpa / seed 7 crashed" in err and "RuntimeError: boom" in err
    summaries = json.loads((html_dir / "summary.json").read_text())
    assert [s["policy"] for s in summaries] == ["drain", "seed", "keda"]


@pytest.mark.parametrize(("n", "workers"), [(1, 8), (10, 8), (1000, 8), (1000, 1)])
def test_sweep_chunks_cover_every_item_once(n, workers):
    items = [(0, "drain", s, s == 0) for s in range(n)]
    chunks = commands._chunks(items, workers)
    assert [i for c in chunks for i in c] == items
    assert max(len(c) for c in chunks) <= commands.MAX_CHUNK
    if n >= 1000:
        assert len(chunks) <= 1000 // 8  # far fewer submissions than runs
