"""What `elastic-airflow sim|sweep|e2e` do (DESIGN.md, "Command line").

Exit codes: 0 every expectation holds, 1 one fails (in a sweep: one under `drain`, or a run
crashed), 2 bad input (scenario file, policy, option), 3 not available (e2e for now).
Nothing is written to `--json` or `--html` when the input is bad.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from controllers.core.policies import DEFAULT_POLICY, POLICIES
from harness.results import RunResult, check_expectations
from harness.scenario import SUMMARY_KEYS, Scenario, ScenarioError, load_scenario

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3
GATING_POLICY = DEFAULT_POLICY  # a sweep fails only on this policy's expectations
MAX_CHUNK = 32  # runs per submitted job in a sweep


Loaded = tuple[Scenario, Path]  # a scenario and the file it came from


class InputError(Exception):
    """Bad command-line input: one line for stderr, exit code 2."""


def _policy_error(name: str, where: str) -> InputError:
    return InputError(f"{where}: unknown policy {name!r}; choose one of {', '.join(POLICIES)}")


def _plain(value: Any) -> Any:
    """JSON-friendly: numpy scalars to Python, NaN to null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def ordered_summary(scenario: Scenario, summary: dict[str, Any]) -> dict[str, Any]:
    """The summary with exactly the DESIGN.md keys, in order; `expect_failures` computed when the
    producer did not give it."""
    summary = dict(summary)
    if "expect_failures" not in summary:
        summary["expect_failures"] = check_expectations(scenario, summary)
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing:
        raise RuntimeError(f"the run's summary lacks {', '.join(missing)}")
    out = {k: _plain(summary[k]) for k in SUMMARY_KEYS}
    out["expect_failures"] = [str(f) for f in summary["expect_failures"]]
    return out


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _simulate(scenario: Scenario, path: Path, policy: str, seed: int, tables: bool) -> RunResult:
    """One simulator run; CSV traces are found beside the scenario file, as `load_scenario`
    checked them."""
    from harness.sim import simulate

    result = simulate(scenario, policy, seed, tables=tables)
    result.summary = ordered_summary(scenario, result.summary)
    return result


def print_summary(summary: dict[str, Any], n_expect: int, file: Any = None) -> None:
    file = file or sys.stdout
    width = max(len(k) for k in SUMMARY_KEYS)
    for key in SUMMARY_KEYS:
        if key != "expect_failures":
            print(f"{key:<{width}}  {summary[key]}", file=file)
    failures = summary["expect_failures"]
    if failures:
        print("expect failures:", file=file)
        for failure in failures:
            print(f"  - {failure}", file=file)
        print(f"FAIL: {len(failures)} expectation(s) do not hold", file=file)
    elif n_expect:
        print(f"PASS: all {n_expect} expectations hold", file=file)
    else:
        print("PASS: the scenario has no expectations", file=file)


# ----------------------------------------------------------------------------- sim


def run_sim(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario)
        policy = args.policy or scenario.policy
        if policy not in POLICIES:
            raise _policy_error(policy, "--policy")
    except (ScenarioError, InputError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    seed = scenario.seed if args.seed is None else args.seed
    try:
        result = _simulate(scenario, Path(args.scenario), policy, seed, tables=bool(args.html))
    except ScenarioError as exc:  # e.g. a trace file the simulator could not read
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    summary = result.summary
    print_summary(summary, len(scenario.expect))
    if args.json:
        _write_json(Path(args.json), summary)
    if args.html:
        from harness.report import write_report

        title = f"sim: {scenario.name} / {policy} / seed {seed}"
        path = write_report([result], Path(args.html), title, [summary])
        print(f"report: {path}", file=sys.stderr)
    return EXIT_FAILED if summary["expect_failures"] else EXIT_OK


# ----------------------------------------------------------------------------- sweep


def expand_scenario_args(names: Sequence[str]) -> list[Path]:
    """Scenario files from the arguments: files as given, a directory's *.yaml / *.yml, and glob
    patterns (for runners such as tox that do not expand them)."""
    paths: list[Path] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            found = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
            if not found:
                raise ScenarioError(path, "", "no *.yaml scenario file in this directory")
        elif not path.exists() and glob.has_magic(name):
            found = sorted(Path(p) for p in glob.glob(name))
            if not found:
                raise ScenarioError(name, "", "no file matches this pattern")
        else:
            found = [path]
        paths.extend(found)
    return list(dict.fromkeys(paths))


def parse_policies(text: str | None) -> list[str]:
    if text is None:
        return list(POLICIES)
    names = list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    if not names:
        raise InputError(f"--policy: give one or more of {', '.join(POLICIES)}")
    for name in names:
        if name not in POLICIES:
            raise _policy_error(name, "--policy")
    return names


def load_all(paths: Sequence[Path]) -> list[Loaded]:
    """Every scenario with its file, or InputError naming all the bad files (one line each)."""
    scenarios: list[Loaded] = []
    errors: list[str] = []
    names: dict[str, Path] = {}
    for path in paths:
        try:
            scenario = load_scenario(path)
        except ScenarioError as exc:
            errors.append(str(exc))
            continue
        if scenario.name in names:
            errors.append(
                f"{path}: name: {scenario.name!r} is also the name in {names[scenario.name]}"
            )
        names.setdefault(scenario.name, path)
        scenarios.append((scenario, path))
    if errors:
        raise InputError("\n".join(errors))
    return scenarios


# A sweep item: (scenario index, policy, seed, keep tables).
Item = tuple[int, str, int, bool]
Outcome = tuple[Item, dict[str, Any] | None, RunResult | None, str | None]

_WORKER_SCENARIOS: list[Loaded] = []


def _init_worker(scenarios: list[Loaded]) -> None:
    global _WORKER_SCENARIOS
    _WORKER_SCENARIOS = scenarios


def _run_item(loaded: Loaded, item: Item) -> Outcome:
    _, policy, seed, tables = item
    try:
        result = _simulate(*loaded, policy, seed, tables)
    except Exception:  # one crashed run must not lose the sweep: reported, exit 1
        return item, None, None, traceback.format_exc()
    return item, result.summary, (result if tables else None), None


def _run_chunk(chunk: list[Item]) -> list[Outcome]:
    return [_run_item(_WORKER_SCENARIOS[item[0]], item) for item in chunk]


def _chunks(items: list[Item], workers: int) -> list[list[Item]]:
    size = max(1, min(MAX_CHUNK, math.ceil(len(items) / (workers * 4))))
    return [items[i : i + size] for i in range(0, len(items), size)]


def run_items(scenarios: list[Loaded], items: list[Item], jobs: int) -> list[Outcome]:
    """Run every item, in this process when one worker suffices, else in a process pool with
    chunked submission; a tqdm bar on stderr. Outcomes come back in item order."""
    from tqdm import tqdm

    workers = jobs or os.cpu_count() or 1
    chunks = _chunks(items, workers)
    workers = min(workers, len(chunks))
    interval = 0.5 if sys.stderr.isatty() else 30.0

    def progress() -> tqdm:
        return tqdm(total=len(items), unit="run", file=sys.stderr, mininterval=interval)

    outcomes: list[Outcome] = []
    if workers <= 1:
        with progress() as bar:
            for item in items:
                outcomes.append(_run_item(scenarios[item[0]], item))
                bar.update()
    else:
        with ProcessPoolExecutor(
            max_workers=workers, initializer=_init_worker, initargs=(scenarios,)
        ) as pool:
            # Submitting starts the workers: before the bar, whose monitor thread a fork must
            # not copy.
            futures = [pool.submit(_run_chunk, chunk) for chunk in chunks]
            with progress() as bar:
                for future in as_completed(futures):
                    done = future.result()
                    outcomes.extend(done)
                    bar.update(len(done))
    index = {item: i for i, item in enumerate(items)}
    return sorted(outcomes, key=lambda o: index[o[0]])


def print_sweep(summaries: list[dict[str, Any]], file: Any = None) -> None:
    """The per scenario x policy table, peers' expectation failures as information, drain's as
    failures."""
    import pandas as pd

    from harness.report.tables import aggregate

    file = file or sys.stdout
    table = aggregate(summaries)[
        ["runs", "busy terms", "killed", "lost", "wait p95", "worker-s", "expect fail"]
    ].rename(columns={"wait p95": "wait p95 mean", "worker-s": "worker-s mean"})
    with pd.option_context("display.width", 200, "display.max_rows", None):
        print(table.round(2).to_string(), file=file)

    peers: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in summaries:
        if s["expect_failures"] and s["policy"] != GATING_POLICY:
            peers.setdefault((s["scenario"], s["policy"]), []).append(s)
    if peers:
        print("\ninformation: expectations that the peer policies miss (not a failure):", file=file)
        for (scenario, policy), runs in peers.items():
            seen = list(dict.fromkeys(f for s in runs for f in s["expect_failures"]))
            more = f"; and {len(seen) - 3} more" if len(seen) > 3 else ""
            print(
                f"  {scenario} / {policy}: {len(runs)} run(s): {'; '.join(seen[:3])}{more}",
                file=file,
            )
    gating = [s for s in summaries if s["policy"] == GATING_POLICY]
    failing = [s for s in gating if s["expect_failures"]]
    if failing:
        print(f"\nFAIL: {len(failing)} {GATING_POLICY} run(s) miss expectations:", file=file)
        for s in failing:
            print(
                f"  {s['scenario']} / seed {s['seed']}: {'; '.join(s['expect_failures'])}",
                file=file,
            )
    elif gating:
        print(f"\nPASS: every expectation holds in {len(gating)} {GATING_POLICY} run(s)", file=file)


def write_sweep_outputs(
    out_dir: Path, title: str, summaries: list[dict[str, Any]], results: list[RunResult]
) -> Path:
    from harness.report import write_report
    from harness.report.tables import summaries_frame

    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(out_dir / "summary.json", summaries)
    summaries_frame(summaries).to_csv(out_dir / "summary.csv", index=False)
    return write_report(results, out_dir, title, summaries)


def run_sweep(args: argparse.Namespace) -> int:
    try:
        if args.seeds < 1:
            raise InputError(f"--seeds: must be at least 1 (got {args.seeds})")
        if args.jobs < 0:
            raise InputError(f"--jobs: must be 0 (one per core) or more (got {args.jobs})")
        policies = parse_policies(args.policy)
        scenarios = load_all(expand_scenario_args(args.scenarios))
    except (ScenarioError, InputError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT

    items: list[Item] = [
        (i, policy, scenario.seed + k, k == 0)
        for i, (scenario, _) in enumerate(scenarios)
        for policy in policies
        for k in range(args.seeds)
    ]
    outcomes = run_items(scenarios, items, args.jobs)
    summaries = [summary for _, summary, _, _ in outcomes if summary is not None]
    results = [result for _, _, result, _ in outcomes if result is not None]
    errors = [(item, error) for item, _, _, error in outcomes if error is not None]

    if summaries:
        print_sweep(summaries)
    for (i, policy, seed, _), error in errors:
        print(
            f"ERROR: {scenarios[i][0].name} / {policy} / seed {seed} crashed:\n{error}",
            file=sys.stderr,
        )
    if args.html:
        title = (
            f"sweep: {len(scenarios)} scenario(s) x {len(policies)} policies x {args.seeds} seed(s)"
        )
        path = write_sweep_outputs(Path(args.html), title, summaries, results)
        print(f"report: {path}", file=sys.stderr)

    drain_failed = any(s["expect_failures"] for s in summaries if s["policy"] == GATING_POLICY)
    if errors:
        print(f"FAIL: {len(errors)} run(s) crashed", file=sys.stderr)
    return EXIT_FAILED if drain_failed or errors else EXIT_OK


# ----------------------------------------------------------------------------- e2e


def run_e2e(args: argparse.Namespace) -> int:
    """One scenario on a real cluster (`harness.e2e.runner`), audited from outside the operator.

    Exit codes as `sim` (0 every expectation and every audit check holds, 1 one fails or the run
    could not be carried out, 2 bad input: scenario file, a policy or fault the real cluster cannot
    run), 3 when the cluster provider or a prerequisite (binaries, the Airflow venv) is missing,
    130 on Ctrl-C. The summary JSON has the DESIGN keys plus `cluster`, `mode`,
    `stack_startup_seconds`, `peak_rss_mb` and `audit`. With `--html DIR`: the run's report
    (`DIR/index.html`), the simulator beside it (`DIR/sim-vs-real/index.html`), the tables as
    CSV, `DIR/audit.json` and the components' logs (`DIR/logs/`).
    """
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    from harness.e2e.providers import ProviderUnavailable, get_provider
    from harness.e2e.runner import E2EError, run_scenario, unsupported

    problems = unsupported(scenario)
    if problems:
        for problem in problems:
            print(f"{args.scenario}: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        provider = get_provider(args.cluster)
    except ProviderUnavailable as exc:
        print(f"e2e: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE

    from harness.e2e.airflow import AirflowStackError, AirflowUnavailable
    from harness.e2e.controlplane import ControlPlaneError
    from harness.e2e.kubebins import BinariesUnavailable
    from harness.e2e.stack import StackError
    from harness.services import MissingBinary, ServiceError

    html_dir = Path(args.html) if args.html else None
    try:
        result = run_scenario(
            scenario,
            Path(args.scenario),
            provider,
            logs_dir=html_dir / "logs" if html_dir else None,
        )
    except KeyboardInterrupt:
        print("e2e: interrupted; everything was stopped", file=sys.stderr)
        return 130
    except (MissingBinary, BinariesUnavailable, AirflowUnavailable) as exc:
        print(f"e2e: a prerequisite is missing: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (E2EError, StackError, AirflowStackError, ControlPlaneError, ServiceError) as exc:
        print(f"e2e: the run could not be carried out: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception:
        print(f"e2e: the run failed:\n{traceback.format_exc()}", file=sys.stderr)
        return EXIT_FAILED

    summary = ordered_summary(scenario, result.summary)
    result.summary = summary
    extra = result.extra
    peak = extra.get("peak_rss_bytes") or 0
    peak_mb = round(peak / 2**20) if peak else None  # None: the provider cannot measure it
    details = {
        "cluster": extra.get("cluster", ""),
        "mode": result.mode,
        "stack_startup_seconds": extra.get("stack_startup_seconds"),
        "peak_rss_mb": peak_mb,
        "audit": {
            **extra.get("audit", {}),
            "killed_executions": extra.get("killed_executions"),
            "operator_restarts": extra.get("operator_restarts"),
        },
    }
    print_summary(summary, len(scenario.expect))
    memory = f"{peak_mb} MiB" if peak_mb is not None else "not measured on this cluster"
    print(
        f"cluster {details['cluster']}: stack up in {details['stack_startup_seconds']} s, "
        f"peak memory (RSS sum of the whole stack) {memory}"
    )
    if args.json:
        _write_json(Path(args.json), {**summary, **details})
    if html_dir is not None:
        from harness.e2e.runner import write_e2e_report

        path = write_e2e_report(scenario, Path(args.scenario), result, summary, details, html_dir)
        print(f"report: {path}", file=sys.stderr)
    return EXIT_FAILED if summary["expect_failures"] else EXIT_OK
