"""Scenario files (DESIGN.md, "Scenario YAML"): load, validate, and say clearly what is wrong.

A bad scenario raises `ScenarioError`, whose message is one line naming the file, the key and the
problem; the command line turns it into exit code 2.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from controllers.api import (
    ElasticWorker,
    ElasticWorkerAutoscaler,
    InvalidResource,
    convert,
    validate_elastic_worker,
    validate_elastic_worker_autoscaler,
)
from controllers.core.policies import POLICIES, get_policy
from controllers.core.specs import AutoscalerSpec, WorkerSetSpec

SUMMARY_KEYS = (
    "scenario",
    "policy",
    "seed",
    "busy_worker_terminations",
    "tasks_killed",
    "tasks_lost",
    "tasks_completed",
    "worker_seconds",
    "wait_mean",
    "wait_p50",
    "wait_p95",
    "wait_p99",
    "max_replicas",
    "final_replicas",
    "scale_events",
    "sim_events",
    "wall_seconds",
    "expect_failures",
)
NUMERIC_SUMMARY_KEYS = tuple(
    k for k in SUMMARY_KEYS if k not in ("scenario", "policy", "expect_failures")
)
FAULT_KINDS = (
    "metrics_stale",
    "metrics_outage",
    "controller_restart",
    "hook_failure",
    "hook_timeout",
    "pod_start_failure",
    "worker_crash",
    "api_conflict",
)


class ScenarioError(Exception):
    """A scenario file that cannot be run: `file: key: problem`."""

    def __init__(self, file: str | Path, key: str, problem: str) -> None:
        self.file, self.key, self.problem = str(file), key, problem
        super().__init__(f"{file}: {key}: {problem}" if key else f"{file}: {problem}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


NonNegative = Annotated[float, Field(ge=0)]


class Constant(Strict):
    constant: NonNegative


class UniformArgs(Strict):
    low: NonNegative
    high: NonNegative

    @model_validator(mode="after")
    def ordered(self) -> UniformArgs:
        if self.high < self.low:
            raise ValueError("high must be >= low")
        return self


class Uniform(Strict):
    uniform: UniformArgs


class ExponentialArgs(Strict):
    mean: Annotated[float, Field(gt=0)]


class Exponential(Strict):
    exponential: ExponentialArgs


class LognormalArgs(Strict):
    mean: Annotated[float, Field(gt=0)]  # the mean of the durations themselves
    sigma: NonNegative


class Lognormal(Strict):
    lognormal: LognormalArgs


def _tag(kinds: dict[str, str], what: str):
    """Pick a union member by the key a mapping carries, so errors speak of that member."""

    def tag(value: Any) -> str | None:
        if isinstance(value, dict):
            for key, name in kinds.items():
                if key in value:
                    return name
            return None
        return kinds.get("") if not isinstance(value, BaseModel) else type(value).__name__

    return Discriminator(tag, custom_error_type="invalid_kind", custom_error_message=what)


Duration = Annotated[
    Annotated[NonNegative, Tag("number")]
    | Annotated[Constant, Tag("Constant")]
    | Annotated[Uniform, Tag("Uniform")]
    | Annotated[Exponential, Tag("Exponential")]
    | Annotated[Lognormal, Tag("Lognormal")],
    _tag(
        {
            "": "number",
            "constant": "Constant",
            "uniform": "Uniform",
            "exponential": "Exponential",
            "lognormal": "Lognormal",
        },
        "a duration is a number of seconds or one of {constant|uniform|exponential|lognormal}",
    ),
]


def duration_mean(d: Duration) -> float:
    match d:
        case Constant(constant=c):
            return c
        case Uniform(uniform=u):
            return (u.low + u.high) / 2
        case Exponential(exponential=e):
            return e.mean
        case Lognormal(lognormal=ln):
            return ln.mean
        case _:
            return float(d)


def sample_duration(d: Duration, rng: Any) -> float:
    """Draw one duration with a `random.Random`-like generator."""
    match d:
        case Constant(constant=c):
            return c
        case Uniform(uniform=u):
            return rng.uniform(u.low, u.high)
        case Exponential(exponential=e):
            return rng.expovariate(1.0 / e.mean)
        case Lognormal(lognormal=ln):
            mu = math.log(ln.mean) - ln.sigma**2 / 2
            return rng.lognormvariate(mu, ln.sigma)
        case _:
            return float(d)


class Cluster(Strict):
    worker_concurrency: Annotated[int, Field(ge=1)] = 2
    prefetch_multiplier: Annotated[int, Field(ge=0)] = 1
    acks_late: bool = True
    pod_startup: NonNegative = 10
    termination_grace: NonNegative = 30
    metrics_interval: Annotated[float, Field(gt=0)] = 3
    sync_period: Annotated[float, Field(gt=0)] = 5
    # Not in the prototype; defaults chosen to be realistic and small.
    hook_latency: NonNegative = 0.2  # cordon / inspect round trip through the hook
    scheduler_latency: NonNegative = 1.0  # task succeeded -> next task queued
    task_retries: Annotated[int, Field(ge=0)] = 0


class Task(Strict):
    duration: Duration
    name: str | None = None


class Dag(Strict):
    tasks: Annotated[list[Task], Field(min_length=1)]


class Burst(Strict):
    at: NonNegative
    dag: str
    count: Annotated[int, Field(ge=1)] = 1


class PoissonArgs(Strict):
    rate: Annotated[float, Field(gt=0)]  # runs per second
    start: NonNegative = 0
    end: NonNegative | None = None  # default: the scenario's duration


class Poisson(Strict):
    poisson: PoissonArgs
    dag: str


class Trace(Strict):
    trace: str  # CSV file (relative to the scenario) with a column `at` (seconds)
    dag: str


Arrival = Annotated[
    Annotated[Burst, Tag("Burst")]
    | Annotated[Poisson, Tag("Poisson")]
    | Annotated[Trace, Tag("Trace")],
    _tag(
        {"poisson": "Poisson", "trace": "Trace", "at": "Burst"},
        "a workload entry has `at` (a burst), `poisson` or `trace`",
    ),
]


class Fault(Strict):
    at: NonNegative
    kind: Literal[
        "metrics_stale",
        "metrics_outage",
        "controller_restart",
        "hook_failure",
        "hook_timeout",
        "pod_start_failure",
        "worker_crash",
        "api_conflict",
    ]
    duration: NonNegative = 0
    count: Annotated[int, Field(ge=1)] = 1  # workers / pods / requests affected


class Bound(Strict):
    le: float | None = None
    ge: float | None = None
    lt: float | None = None
    gt: float | None = None

    @model_validator(mode="after")
    def one_at_least(self) -> Bound:
        if all(v is None for v in (self.le, self.ge, self.lt, self.gt)):
            raise ValueError("give at least one of le, ge, lt, gt")
        return self


class Scenario(Strict):
    name: str
    description: str = ""
    seed: int = 1
    duration: Annotated[float, Field(gt=0)]
    policy: str = "drain"
    cluster: Cluster = Cluster()
    elasticWorker: dict[str, Any]
    elasticWorkerAutoscaler: dict[str, Any]
    dags: Annotated[dict[str, Dag], Field(min_length=1)]
    workload: list[Arrival] = []
    faults: list[Fault] = []
    expect: dict[str, float | Bound] = {}

    @field_validator("policy")
    @classmethod
    def known_policy(cls, v: str) -> str:
        if v not in POLICIES:
            raise ValueError(f"unknown policy {v!r}; choose one of {', '.join(POLICIES)}")
        return v

    @model_validator(mode="after")
    def dags_exist(self) -> Scenario:
        for key in self.expect:
            if key not in NUMERIC_SUMMARY_KEYS:
                raise _KeyedError(
                    f"expect.{key}",
                    f"not a summary key; choose from {', '.join(NUMERIC_SUMMARY_KEYS)}",
                )
        for i, arrival in enumerate(self.workload):
            if arrival.dag not in self.dags:
                raise _KeyedError(
                    f"workload.{i}.dag",
                    f"unknown DAG {arrival.dag!r}; defined: {', '.join(self.dags)}",
                )
        return self


class _KeyedError(ValueError):
    def __init__(self, key: str, problem: str) -> None:
        self.key, self.problem = key, problem
        super().__init__(problem)


def _error_key(loc: tuple[Any, ...]) -> str:
    # pydantic names union members in the location ("float", "Constant"): they are not keys.
    parts = [str(p) for p in loc if not (isinstance(p, str) and (p[:1].isupper() or p in _TYPES))]
    return ".".join(parts)


_TYPES = {"float", "int", "str", "bool", "number", "constrained-float", "function-after"}


def parse_scenario(data: Any, file: str | Path = "<scenario>") -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError(file, "", "a scenario is a mapping of keys (name, duration, ...)")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _KeyedError):
            raise ScenarioError(file, ctx_error.key, ctx_error.problem) from None
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        scalar = isinstance(err.get("input"), (int, float, str, bool))
        if scalar and err["type"] not in ("missing", "extra_forbidden") and "got" not in msg:
            msg += f" (got {err['input']!r})"
        raise ScenarioError(file, _error_key(err["loc"]), msg) from None


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(path, "", f"cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(path, "", f"not valid YAML: {exc}") from None
    scenario = parse_scenario(data, path)
    resources(scenario, path)
    # Traces are named relative to the scenario file; from here on they are absolute.
    workload = list(scenario.workload)
    for i, arrival in enumerate(workload):
        if isinstance(arrival, Trace):
            trace = (path.parent / arrival.trace).resolve()
            read_trace(trace, path, f"workload.{i}.trace")
            workload[i] = arrival.model_copy(update={"trace": str(trace)})
    return scenario.model_copy(update={"workload": workload})


def read_trace(csv_path: Path, scenario_file: str | Path, key: str) -> list[float]:
    """Trigger times from a CSV trace with a column `at` (seconds from the start)."""
    try:
        with csv_path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ScenarioError(scenario_file, key, f"cannot read {csv_path}: {exc.strerror}") from None
    times = []
    for n, row in enumerate(rows, start=2):
        try:
            t = float(row["at"])
        except (KeyError, TypeError, ValueError):
            raise ScenarioError(
                scenario_file, key, f"{csv_path} line {n}: needs a number in column 'at'"
            ) from None
        if t < 0:
            raise ScenarioError(scenario_file, key, f"{csv_path} line {n}: negative time {t}")
        times.append(t)
    return sorted(times)


def resources(
    scenario: Scenario, file: str | Path = "<scenario>"
) -> tuple[ElasticWorker, ElasticWorkerAutoscaler]:
    """The scenario's two resources, validated as the API server and the operator would."""
    ew_spec = dict(scenario.elasticWorker)
    name = ew_spec.pop("name", "airflow-worker")
    ewa_spec = {"scaleTargetRef": {"name": name}, **scenario.elasticWorkerAutoscaler}
    meta = {"name": name, "namespace": "default"}
    try:
        ew = validate_elastic_worker({"metadata": meta, "spec": ew_spec})
    except InvalidResource as exc:
        raise _resource_error(file, "elasticWorker", exc) from None
    try:
        ewa = validate_elastic_worker_autoscaler({"metadata": meta, "spec": ewa_spec})
    except InvalidResource as exc:
        raise _resource_error(file, "elasticWorkerAutoscaler", exc) from None
    return ew, ewa


def _resource_error(file: str | Path, key: str, exc: InvalidResource) -> ScenarioError:
    first = exc.errors[0]
    return ScenarioError(file, f"{key}.{first.path.removeprefix('spec.')}", first.message)


def workerset_spec(scenario: Scenario, policy_name: str | None = None) -> WorkerSetSpec:
    """The ElasticWorker as the core reads it, with the policy's own scale-in policy if it has one.

    The drain policy runs the ElasticWorker with `selector` on the autoscaler's mark label.
    """
    ew, ewa = resources(scenario)
    workerset_policy = get_policy(policy_name or scenario.policy).workerset_policy
    spec = convert.workerset_spec(ew, workerset_policy)
    if spec.policy == "selector" and workerset_policy == "selector":
        mark = dict(ewa.spec.scale_in_spec.mark_for_termination_label)
        spec = replace(spec, policy_selector=mark)
    return spec


def autoscaler_spec(scenario: Scenario) -> AutoscalerSpec:
    ew, ewa = resources(scenario)
    return convert.autoscaler_spec(ewa, ew, scenario.cluster.worker_concurrency)


def arrival_times(scenario: Scenario, index: int, rng: Any) -> Iterator[float]:
    """When the DAG runs of workload entry `index` arrive, in order.

    The one definition for the simulator and the e2e runner: with the same `rng` stream
    (`random.Random(f"{seed}:workload:{index}")`) both draw the same arrivals.
    """
    entry = scenario.workload[index]
    if isinstance(entry, Burst):
        yield from [entry.at] * entry.count
    elif isinstance(entry, Poisson):
        p = entry.poisson
        end = scenario.duration if p.end is None else p.end
        t = p.start
        while True:
            t += rng.expovariate(p.rate)
            if t >= end:
                return
            yield t
    else:
        # load_scenario made trace paths absolute; a relative one is from the current folder.
        yield from read_trace(Path(entry.trace), scenario.name, f"workload.{index}.trace")
