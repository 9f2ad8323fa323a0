"""`elastic-airflow e2e SCENARIO.yaml`: one scenario on a real cluster, audited from outside.

    result = run_scenario(scenario, scenario_path, provider)      # a RunResult, as `simulate`

Phases (a line each on stderr, then a tqdm bar of finished runs):

1. the provider brings the cluster and the stack up (`harness.e2e.stack` for `local`);
2. the runner creates the ElasticWorker (the scenario's `elasticWorker`, with the provider's
   Airflow-worker pod template, which replaces any template of the scenario's but keeps its
   labels, and the scenario's grace period) and the ElasticWorkerAutoscaler
   (the scenario's spec, wired to the drain hook and its token Secret), and waits until
   `minReplicas` workers are online;
3. the workload: the scenario's DAG runs are triggered through the REST API at their times
   (bursts, Poisson arrivals and traces drawn exactly as the simulator draws them, from the
   scenario's seed, each run's task durations passed in its conf, so both see the same work);
   faults fire at their times (`controller_restart`: the operator is SIGKILLed by pid and a new
   one started 5 s later, or after the fault's `duration`);
4. it waits until every run has finished or `duration` (a wall-clock cap here) has passed, then
   until the pool is back at `minReplicas` with nothing draining or terminating (bounded);
5. the auditor (`harness.e2e.auditor`) turns what it saw into the simulator's tables and summary;
   everything is stopped by pid, also on Ctrl-C and on failure.

The simulator's `drain` policy is what the operator implements; scenarios of another policy and
fault kinds the real cluster cannot inject yet are refused before anything starts.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from controllers.api import AUTOSCALER_PLURAL, ELASTIC_WORKER_PLURAL, GROUP, VERSION
from harness.e2e.airflow_api import FINISHED_RUN_STATES, AirflowAPI, AirflowAPIError
from harness.e2e.auditor import Auditor, Trigger, View, nodename, task_ids
from harness.e2e.providers import Cluster, ClusterProvider
from harness.results import RunResult
from harness.scenario import Scenario, arrival_times, resources, sample_duration

#: The fault kinds the e2e runner can inject; the others are refused up front.
SUPPORTED_FAULTS = ("controller_restart",)
#: The policy the operator implements.
E2E_POLICY = "drain"
RESTART_DOWNTIME = 5.0  # as the simulator's controller_restart
WORKERS_ONLINE_TIMEOUT = 240.0
POLL_RUNS_SECONDS = 2.0
KEEP_ENV = "ELASTIC_AIRFLOW_E2E_KEEP"  # "1": keep the work directory (logs, pod dirs, DAGs)

SampleHook = Callable[["E2ERun", View], None]


class E2EError(RuntimeError):
    """The run could not be carried out (the stack died, the workers never came up...)."""


def unsupported(scenario: Scenario) -> list[str]:
    """What in the scenario an e2e run cannot do, one line each (empty: it can run)."""
    problems = []
    if scenario.policy != E2E_POLICY:
        problems.append(
            f"policy: {scenario.policy!r}: the operator implements {E2E_POLICY!r} only; "
            "run the other policies with `elastic-airflow sim`"
        )
    for i, fault in enumerate(scenario.faults):
        if fault.kind not in SUPPORTED_FAULTS:
            problems.append(
                f"faults.{i}.kind: {fault.kind!r} is not supported in e2e yet "
                f"(supported: {', '.join(SUPPORTED_FAULTS)})"
            )
    return problems


# -- the workload --------------------------------------------------------------------------------


def plan_workload(scenario: Scenario) -> list[Trigger]:
    """Every DAG run of the scenario with its time and task durations, in trigger order.

    Drawn as the simulator draws them: one random stream per workload entry seeded
    `"{seed}:workload:{index}"`, the durations of a run right after its arrival time."""
    planned: list[tuple[float, int, int, str, dict[str, float]]] = []
    for index, entry in enumerate(scenario.workload):
        rng = random.Random(f"{scenario.seed}:workload:{index}")
        names = task_ids(scenario, entry.dag)
        for k, at in enumerate(arrival_times(scenario, index, rng)):
            if at >= scenario.duration:
                break
            tasks = scenario.dags[entry.dag].tasks
            durations = {
                n: round(sample_duration(t.duration, rng), 3)
                for n, t in zip(names, tasks, strict=True)
            }
            planned.append((at, index, k, entry.dag, durations))
    planned.sort(key=lambda p: (p[0], p[1], p[2]))
    numbers: dict[str, int] = {}
    triggers = []
    for at, _, _, dag, durations in planned:
        numbers[dag] = numbers.get(dag, 0) + 1
        run_id = f"e2e__{dag}__{numbers[dag]:04d}"
        triggers.append(Trigger(dag, numbers[dag], run_id, at, durations))
    return triggers


# -- resources ------------------------------------------------------------------------------------


def elastic_worker_manifest(scenario: Scenario, cluster: Cluster) -> dict[str, Any]:
    ew, _ = resources(scenario)
    spec = {k: v for k, v in scenario.elasticWorker.items() if k != "name"}
    template = cluster.worker_template()
    given = spec.get("template") or {}
    labels = {
        **template["metadata"]["labels"],
        **((given.get("metadata") or {}).get("labels") or {}),
    }
    template["metadata"]["labels"] = labels
    spec["template"] = template
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ElasticWorker",
        "metadata": {"name": ew.metadata.name, "namespace": cluster.namespace},
        "spec": spec,
    }


def autoscaler_manifest(scenario: Scenario, cluster: Cluster) -> dict[str, Any]:
    ew, _ = resources(scenario)
    spec = dict(scenario.elasticWorkerAutoscaler)
    spec.setdefault("scaleTargetRef", {"name": ew.metadata.name})
    spec["scaleInSpec"] = {**(spec.get("scaleInSpec") or {}), **cluster.autoscaler_additions()}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ElasticWorkerAutoscaler",
        "metadata": {"name": f"{ew.metadata.name}-autoscaler", "namespace": cluster.namespace},
        "spec": spec,
    }


# -- the run --------------------------------------------------------------------------------------


class Progress:
    """Phase lines on stderr, with the seconds since the start."""

    def __init__(self, enabled: bool = True, stream: Any = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.began = time.monotonic()

    def __call__(self, message: str) -> None:
        if self.enabled:
            from tqdm import tqdm

            elapsed = time.monotonic() - self.began
            # Through tqdm, so that a line never lands in the middle of the progress bar.
            tqdm.write(f"[e2e {elapsed:6.1f}s] {message}", file=self.stream)
            self.stream.flush()


@dataclass
class E2ERun:
    """One run in progress; hooks get it to act on the run (e.g. `restart_operator`)."""

    scenario: Scenario
    cluster: Cluster
    auditor: Auditor
    progress: Progress
    t0: float = 0.0
    restarts: list[dict[str, Any]] = field(default_factory=list)
    _restart_lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.time() - self.t0

    def restart_operator(self, why: str, downtime: float = RESTART_DOWNTIME) -> None:
        """Kill the operator by pid and start a new one after `downtime` (in this thread)."""
        with self._restart_lock:
            view = self.auditor.view()
            at = time.time()
            self.auditor.note_event(at, "fault", "", f"controller_restart: {why}")
            self.progress(f"fault: controller_restart ({why}); drain steps {view.steps}")
            old, new = self.cluster.restart_operator(downtime)
            self.auditor.note_event(time.time(), "restart", "", f"operator pid {old} -> {new}")
            self.restarts.append(
                {"t": at - self.t0, "why": why, "old_pid": old, "new_pid": new, "steps": view.steps}
            )


def run_scenario(
    scenario: Scenario,
    scenario_path: Path,
    provider: ClusterProvider,
    *,
    work_dir: Path | None = None,
    on_sample: SampleHook | None = None,
    progress: Progress | None = None,
    settle_timeout: float | None = None,
    logs_dir: Path | None = None,
) -> RunResult:
    """Run the scenario end to end on `provider`'s cluster; the audited `RunResult`.

    `on_sample(run, view)` is called about once a second during the workload and the settling
    (tests use it to inject a fault at a moment of the protocol rather than of the clock).
    `logs_dir`: the components' logs are copied there before everything is stopped."""
    problems = unsupported(scenario)
    if problems:
        raise E2EError("; ".join(problems))
    progress = progress or Progress()
    keep = os.environ.get(KEEP_ENV) == "1"
    own_dir = work_dir is None
    work = Path(work_dir or tempfile.mkdtemp(prefix="ea-e2e-")).resolve()
    started = time.monotonic()
    cluster: Cluster | None = None
    failed = True
    with _terminate_as_interrupt():
        try:
            progress(f"scenario {scenario.name} on the {provider.name} cluster (work dir {work})")
            cluster = provider.open(scenario, work, progress)
            stack_seconds = time.monotonic() - started
            progress(f"stack up in {stack_seconds:.0f} s")
            result = _run_on(
                scenario, scenario_path, cluster, progress, on_sample, settle_timeout,
                stack_seconds,
            )  # fmt: skip
            failed = False
            return result
        except KeyboardInterrupt:
            failed = False  # asked to stop: nothing to inspect
            raise
        finally:
            if cluster is not None:
                if logs_dir is not None:
                    with contextlib.suppress(Exception):
                        save_logs(cluster, logs_dir)
                progress("stopping everything")
                cluster.close()
            if own_dir and not keep and not failed:
                shutil.rmtree(work, ignore_errors=True)
            elif own_dir:
                why = "the run failed" if failed else f"{KEEP_ENV}=1"
                progress(f"work directory kept ({why}): logs, pod dirs and DAGs in {work}")


def _run_on(
    scenario: Scenario,
    scenario_path: Path,
    cluster: Cluster,
    progress: Progress,
    on_sample: SampleHook | None,
    settle_timeout: float | None,
    stack_seconds: float,
) -> RunResult:
    ew, ewa = resources(scenario)
    min_replicas = ew.spec.min_replicas
    triggers = plan_workload(scenario)
    auditor = Auditor(
        cluster,
        scenario,
        ew.metadata.name or "airflow-worker",
        mark_label=dict(ewa.spec.scale_in_spec.mark_for_termination_label),
        target=ewa.spec.target_value,
        min_replicas=min_replicas,
    ).start()
    run = E2ERun(scenario, cluster, auditor, progress)
    try:
        _deploy(scenario, cluster, progress)
        _wait_workers_online(run, min_replicas)
        api = cluster.airflow_api()
        run.t0 = time.time()
        auditor.set_t0(run.t0)
        span = max((t.at for t in triggers), default=0.0)
        progress(
            f"workload: {len(triggers)} DAG run(s) over {span:.0f} s, cap {scenario.duration:.0f} s"
        )
        trigger_thread = _Triggerer(cluster, triggers, run.t0, progress)
        trigger_thread.start()
        faults = _Faults(run)
        try:
            _drive(run, triggers, api, trigger_thread, on_sample, faults)
            _settle(run, scenario, min_replicas, on_sample, settle_timeout, faults)
        finally:
            trigger_thread.stop()
            faults.join()
        end = time.time()
        auditor.stop()
        progress("auditing: task instances, output file, pod ends")
        result = auditor.audit(
            api,
            triggers,
            policy=E2E_POLICY,
            seed=scenario.seed,
            mode=f"e2e:{cluster.provider}",
            end=end,
            extra={
                "cluster": cluster.provider,
                "stack_startup_seconds": round(stack_seconds, 1),
                "stack_timings": dict(getattr(cluster, "timings", {}) or {}),
                "operator_rbac": getattr(cluster, "rbac_source", ""),
                "operator_restarts": run.restarts,
                "triggers": [
                    {
                        "dag": t.dag,
                        "run_id": t.run_id,
                        "at": t.at,
                        "triggered": None if t.triggered_at is None else t.triggered_at - run.t0,
                        "error": t.error,
                    }
                    for t in triggers
                ],
            },
        )
        return result
    finally:
        auditor.stop()


def _deploy(scenario: Scenario, cluster: Cluster, progress: Progress) -> None:
    custom = k8s.CustomObjectsApi(cluster.api_client())
    ew_body = elastic_worker_manifest(scenario, cluster)
    ewa_body = autoscaler_manifest(scenario, cluster)
    ns = cluster.namespace
    progress(
        f"creating ElasticWorker {ew_body['metadata']['name']} "
        f"(min {ew_body['spec'].get('minReplicas')}, max {ew_body['spec'].get('maxReplicas')}) "
        f"and its autoscaler (target {ewa_body['spec'].get('targetValue')})"
    )
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, ELASTIC_WORKER_PLURAL, ew_body)
        custom.create_namespaced_custom_object(GROUP, VERSION, ns, AUTOSCALER_PLURAL, ewa_body)
    except ApiException as error:
        raise E2EError(
            f"the API server refused the resources: {error.status} {error.body}"
        ) from None


def _wait_workers_online(run: E2ERun, count: int) -> None:
    """Until `count` pods run a Celery worker that said it is online."""
    run.progress(f"waiting for {count} Airflow worker(s) to come online")
    deadline = time.monotonic() + WORKERS_ONLINE_TIMEOUT
    while True:
        run.cluster.check_alive()
        view = run.auditor.view()
        online = run.auditor.workers_online()
        ready = [p for p in view.steps if nodename(p) in online]
        if len(ready) >= count:
            run.progress(f"workers online: {', '.join(sorted(ready))}")
            return
        if time.monotonic() > deadline:
            raise E2EError(
                f"only {len(ready)} of {count} workers online after {WORKERS_ONLINE_TIMEOUT:.0f} s"
                f" (pods: {view.steps}); auditor errors: {run.auditor.errors[-3:]}"
            )
        time.sleep(0.5)


class _Triggerer(threading.Thread):
    """Triggers each planned run at its time through the REST API (retrying a failed call)."""

    def __init__(
        self, cluster: Cluster, triggers: list[Trigger], t0: float, progress: Progress
    ) -> None:
        super().__init__(name="e2e-triggerer", daemon=True)
        self.api = cluster.airflow_api()
        self.triggers = triggers
        self.t0 = t0
        self.progress = progress
        self._stop_event = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        try:
            for trig in self.triggers:
                delay = self.t0 + trig.at - time.time()
                if delay > 0 and self._stop_event.wait(delay):
                    return
                self._trigger(trig)
        finally:
            self.done.set()

    def _trigger(self, trig: Trigger) -> None:
        error = None
        for attempt in range(5):
            try:
                self.api.trigger(trig.dag, run_id=trig.run_id, conf={"durations": trig.durations})
                trig.triggered_at = time.time()
                return
            except AirflowAPIError as exc:
                if exc.status == 409:  # the first try landed after all
                    trig.triggered_at = time.time()
                    return
                error = str(exc)
            except OSError as exc:
                error = str(exc)
            if self._stop_event.wait(0.5 * (attempt + 1)):
                break
        trig.error = error or "not triggered"
        self.progress(f"could not trigger {trig.run_id}: {trig.error}")

    def stop(self) -> None:
        self._stop_event.set()
        self.join(30)


def _finished_runs(api: AirflowAPI, triggers: list[Trigger]) -> set[str]:
    ours = {t.run_id for t in triggers}
    done = set()
    for dag in sorted({t.dag for t in triggers}):
        for r in api.list_runs(dag):
            if r.get("dag_run_id") in ours and r.get("state") in FINISHED_RUN_STATES:
                done.add(r["dag_run_id"])
    return done


class _Faults:
    """The scenario's faults, fired at their times (each in a thread of its own, so that the
    waits and the samples go on meanwhile)."""

    def __init__(self, run: E2ERun) -> None:
        self.run = run
        self.pending = sorted(run.scenario.faults, key=lambda f: f.at)
        self.threads: list[threading.Thread] = []

    def fire_due(self) -> None:
        now = self.run.now()
        while self.pending and self.pending[0].at <= now:
            fault = self.pending.pop(0)
            downtime = fault.duration or RESTART_DOWNTIME
            thread = threading.Thread(
                target=self.run.restart_operator,
                args=(f"scenario fault at {fault.at:g} s", downtime),
                name="e2e-fault",
                daemon=True,
            )
            thread.start()
            self.threads.append(thread)

    @property
    def busy(self) -> bool:
        """A fault is still to come (before the duration cap) or still being injected."""
        waiting = bool(self.pending) and self.run.now() < self.run.scenario.duration
        return waiting or any(t.is_alive() for t in self.threads)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(60)
        if self.pending:
            self.run.progress(
                f"{len(self.pending)} fault(s) not injected: the run ended before "
                f"{self.pending[0].at:g} s"
            )


def _drive(
    run: E2ERun,
    triggers: list[Trigger],
    api: AirflowAPI,
    triggerer: _Triggerer,
    on_sample: SampleHook | None,
    faults: _Faults,
) -> None:
    """Until every run has finished or the scenario's duration has passed; faults at their
    times."""
    from tqdm import tqdm

    finished: set[str] = set()
    next_poll = 0.0
    interval = 0.5 if sys.stderr.isatty() else 15.0
    with tqdm(
        total=len(triggers), unit="run", desc="runs finished", file=sys.stderr, mininterval=interval
    ) as bar:
        while True:
            run.cluster.check_alive()
            faults.fire_due()
            now = run.now()
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + POLL_RUNS_SECONDS
                with contextlib.suppress(AirflowAPIError, OSError):
                    done = _finished_runs(api, triggers)
                    bar.update(len(done - finished))
                    finished |= done
            if on_sample is not None:
                on_sample(run, run.auditor.view())
            failed_triggers = {t.run_id for t in triggers if t.error is not None}
            if triggerer.done.is_set() and finished | failed_triggers >= {
                t.run_id for t in triggers
            }:
                run.progress(f"all {len(finished)} run(s) finished at {now:.0f} s")
                break
            if now >= run.scenario.duration:
                run.progress(
                    f"duration cap {run.scenario.duration:.0f} s reached with "
                    f"{len(triggers) - len(finished)} run(s) unfinished"
                )
                break
            time.sleep(1.0)


def _settle(
    run: E2ERun,
    scenario: Scenario,
    min_replicas: int,
    on_sample: SampleHook | None,
    timeout: float | None,
    faults: _Faults,
) -> None:
    """Until the pool is back at `minReplicas` and nothing drains or terminates, and no fault
    is still to come before the duration cap; bounded by `timeout` after the last fault."""
    _, ewa = resources(scenario)
    c = scenario.cluster
    if timeout is None:
        timeout = ewa.spec.scale_in_spec.scale_in_back_off + c.termination_grace
        timeout += 10 * c.sync_period + 90
    run.progress(f"waiting for the pool to come back to {min_replicas} (at most {timeout:.0f} s)")
    deadline = time.monotonic() + timeout
    steady_since: float | None = None
    while True:
        run.cluster.check_alive()
        faults.fire_due()
        if faults.busy:
            deadline = time.monotonic() + timeout
        view = run.auditor.view()
        if on_sample is not None:
            on_sample(run, view)
        steady = (
            view.live == min_replicas
            and view.terminating == 0
            and view.draining == 0
            and (view.desired is None or view.desired == min_replicas)
            and not faults.busy
        )
        if steady:
            steady_since = steady_since or time.monotonic()
            if time.monotonic() - steady_since >= 2.0:
                run.progress(f"pool back at {min_replicas} at {run.now():.0f} s")
                return
        else:
            steady_since = None
        if time.monotonic() > deadline:
            run.progress(
                f"pool not back at {min_replicas} within {timeout:.0f} s "
                f"(live {view.live}, terminating {view.terminating}, draining {view.draining})"
            )
            return
        time.sleep(1.0)


def save_logs(cluster: Cluster, out_dir: Path, limit: int = 2_000_000) -> list[Path]:
    """Copy the tail (`limit` bytes) of every component's log into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = []
    for name, path in cluster.log_files().items():
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            with path.open("rb") as handle:
                handle.seek(max(0, size - limit))
                data = handle.read()
            target = out_dir / f"{name}.log"
            target.write_bytes(data)
            saved.append(target)
    return saved


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the run like Ctrl-C (everything is stopped by pid on the way out)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_e2e_report(
    scenario: Scenario,
    scenario_path: Path,
    result: RunResult,
    summary: dict[str, Any],
    details: dict[str, Any],
    out_dir: Path,
) -> Path:
    """The run's report in `out_dir/index.html`, the simulated run of the same scenario beside
    it in `out_dir/sim-vs-real/index.html`, the four tables as CSV and `audit.json`."""
    import json

    from harness.commands import _simulate
    from harness.report import write_report, write_sim_vs_real

    out_dir.mkdir(parents=True, exist_ok=True)
    cluster = details.get("cluster", "?")
    peak = details.get("peak_rss_mb")
    memory = f"peak memory {peak} MiB RSS" if peak is not None else "memory not measured"
    title = (
        f"e2e on the {cluster} cluster: {scenario.name} / {result.policy} / seed {result.seed} "
        f"(stack up in {details.get('stack_startup_seconds')} s, {memory})"
    )
    path = write_report([result], out_dir, title, [summary])
    try:
        sim = _simulate(scenario, scenario_path, result.policy, result.seed, True)
        write_sim_vs_real(
            sim,
            result,
            out_dir / "sim-vs-real",
            f"{scenario.name}: simulator against {result.mode}",
        )
    except Exception as error:  # the run's own report stands without the comparison
        print(f"[e2e] no simulator comparison: {error!r}", file=sys.stderr)
    for name in ("timeline", "tasks", "terminations", "events"):
        getattr(result, name).to_csv(out_dir / f"{name}.csv", index=False)
    extra = {k: v for k, v in result.extra.items()}
    (out_dir / "audit.json").write_text(
        json.dumps({"summary": summary, **details, "extra": extra}, indent=2, default=str) + "\n"
    )
    return path
