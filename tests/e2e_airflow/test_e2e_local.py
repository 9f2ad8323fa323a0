"""The original's demo scenarios end to end on the `local` cluster, audited from outside.

Everything is real and private: PostgreSQL, RabbitMQ, Redis, etcd + kube-apiserver with the node
agent, Airflow 3 with the CeleryExecutor (one Celery worker per pod), the drain hook, the
collector and the operator. A missing part (binary, Airflow venv, control-plane build) makes
these tests fail with the command's message, never skip.

Budget on a 2-core machine: about 4 minutes for seed-safe-scale-in, 5 for seed-scale-out (its
task_1 sleeps 100 s, and 12 of them on at most 10 slots take two rounds), 2 for the restart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.e2e.auditor import View
from harness.e2e.providers import LocalProvider
from harness.e2e.runner import E2ERun, Progress, run_scenario
from harness.scenario import load_scenario
from harness.services import pid_alive

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.controlplane]

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"
HERE = Path(__file__).resolve().parent
RUN_TIMEOUT = 900


def run_cli(scenario: Path, out: Path) -> tuple[int, dict[str, Any], str]:
    """`python -m harness e2e SCENARIO --cluster local --json --html`; (exit, summary, output)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    summary_path = out / "summary.json"
    log = out / "e2e.log"
    began = time.monotonic()
    with log.open("wb") as handle:
        proc = subprocess.run(
            [
                sys.executable, "-m", "harness", "e2e", str(scenario),
                "--cluster", "local",
                "--json", str(summary_path),
                "--html", str(out / "report"),
            ],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
            timeout=RUN_TIMEOUT, check=False,
        )  # fmt: skip
    text = log.read_text(errors="replace")
    seconds = time.monotonic() - began
    sys.stderr.write(f"\n{scenario.name}: {seconds:.0f} s, exit {proc.returncode}\n")
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return proc.returncode, summary, text


def assert_safe(summary: dict[str, Any], report: Path, tasks: int, output: str) -> None:
    """What every demo must show: nothing lost, killed or terminated busy; back to min."""
    assert summary["cluster"] == "local" and summary["mode"] == "e2e:local", output[-3000:]
    assert summary["expect_failures"] == [], output[-6000:]
    assert summary["tasks_completed"] == tasks
    assert summary["tasks_lost"] == 0
    assert summary["tasks_killed"] == 0
    assert summary["busy_worker_terminations"] == 0
    assert summary["max_replicas"] <= 5
    assert summary["final_replicas"] == 2
    audit = summary["audit"]
    assert audit["successful_task_instances"] == tasks
    assert audit["output_lines_of_this_run"] == tasks
    assert audit["problems"] == []
    assert audit["killed_executions"] == 0
    assert summary["stack_startup_seconds"] > 0 and summary["peak_rss_mb"] > 0

    timeline = pd.read_csv(report / "timeline.csv")
    assert timeline["live"].max() <= 5
    assert timeline["live"].iloc[-1] == 2
    terminations = pd.read_csv(report / "terminations.csv")
    assert not terminations["busy"].any(), terminations.to_string()
    assert (terminations["active"] == 0).all() and (terminations["reserved"] == 0).all()
    # Every worker left by Celery's warm shutdown after the SIGTERM, none was SIGKILLed.
    assert set(terminations["ended_by"]) <= {"SIGTERM", "exit"}, terminations.to_string()
    assert terminations["reason"].str.startswith("marked").all(), terminations.to_string()
    tasks_table = pd.read_csv(report / "tasks.csv")
    assert (tasks_table["outcome"] == "success").sum() == tasks
    assert tasks_table["worker"].str.startswith("airflow-worker-").all()
    assert (report / "index.html").is_file()
    assert (report / "sim-vs-real" / "index.html").is_file()
    assert "e2e:local" in (report / "index.html").read_text()


def test_seed_safe_scale_in(tmp_path: Path) -> None:
    """dag_2 in three bursts of four: the pool scales out, drains between the bursts and at the
    end; all 12 tasks succeed and the output file holds 12 lines."""
    code, summary, output = run_cli(SCENARIOS / "seed-safe-scale-in.yaml", tmp_path)
    assert code == 0, output[-6000:]
    assert_safe(summary, tmp_path / "report", 12, output)
    assert summary["max_replicas"] >= 3, "the bursts should have scaled the pool out"
    assert summary["scale_events"] >= 2


def test_seed_scale_out(tmp_path: Path) -> None:
    """dag_1 (100 s, then an echo) triggered 12 times at once: workers rise to 5, never above,
    then come back to 2; all 24 tasks succeed."""
    code, summary, output = run_cli(SCENARIOS / "seed-scale-out.yaml", tmp_path)
    assert code == 0, output[-6000:]
    assert_safe(summary, tmp_path / "report", 24, output)
    assert summary["max_replicas"] == 5


DRAINING = ("cordon-requested", "cordoned")


def test_operator_killed_mid_drain_loses_nothing(tmp_path: Path) -> None:
    """The operator is SIGKILLed while a worker is between its cordon and its mark; a new one
    resumes from the pods' drain records. Nothing is lost, nothing killed, no busy worker
    deleted, every process of the stack stopped by pid at the end."""
    scenario_path = HERE / "restart-mid-drain.yaml"
    scenario = load_scenario(scenario_path)
    seen_pids: set[int] = set()

    def restart_mid_drain(run: E2ERun, view: View) -> None:
        seen_pids.update(run.cluster.pids().values())
        draining = sorted(p for p, step in view.steps.items() if step in DRAINING)
        if draining and not run.restarts:
            run.restart_operator(f"mid-drain of {', '.join(draining)}")

    result = run_scenario(
        scenario,
        scenario_path,
        LocalProvider(),
        on_sample=restart_mid_drain,
        progress=Progress(),
        logs_dir=tmp_path / "logs",
    )
    summary = result.summary
    restarts = result.extra["operator_restarts"]
    assert len(restarts) == 1, "no drain was ever seen to kill the operator in"
    restart = restarts[0]
    in_drain = {pod for pod, step in restart["steps"].items() if step in DRAINING}
    assert in_drain, restart
    assert restart["old_pid"] != restart["new_pid"]

    assert summary["expect_failures"] == [], summary
    assert summary["tasks_completed"] == 6
    assert result.extra["audit"]["output_lines_of_this_run"] == 6
    assert result.extra["killed_executions"] == 0
    terms = result.terminations
    assert not terms["busy"].any(), terms.to_string()
    assert set(terms["ended_by"]) <= {"SIGTERM", "exit"}, terms.to_string()
    # The drains the dead operator left were finished by the new one: those pods were marked
    # and deleted, the marks written after the restart.
    events = result.events
    after = events[events["t"] > restart["t"]]
    for pod in in_drain:
        row = terms[terms["pod"] == pod]
        assert len(row) == 1, f"{pod} was never deleted:\n{terms.to_string()}"
        assert row["reason"].iloc[0].startswith("marked"), terms.to_string()
    marked_after = set(after.loc[after["kind"] == "mark", "pod"])
    assert marked_after & in_drain, f"the new operator marked none of {in_drain}:\n{events}"
    assert (result.timeline["live"].iloc[-1]) == 2
    assert seen_pids and not [pid for pid in seen_pids if pid_alive(pid)], "processes left"
