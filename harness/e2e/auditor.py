"""The independent auditor of an end-to-end run: what really happened, from outside the operator.

It trusts nothing the operator says about itself. While the run goes it keeps, in threads:

- a watch on the worker pods in the API server: every lifecycle event with the time it was seen
  (created, running, drain steps, deletion requested, gone);
- a watch on the ElasticWorker (its desired count; every change of `spec.replicas` is a `scale`);
- its own Celery event receiver (its own connection to the broker): task-received / started /
  succeeded / failed ... per worker node `celery@<pod>`, with the worker's own timestamps;
- a sampler, once a second: the timeline (desired; live, running, serving, draining, terminating
  pods; the load the collector published in Redis; the queue depth from a passive
  `queue_declare`; active and reserved tasks from the events) and the memory of the whole stack.

For each pod deletion it replays the worker's events up to the moment the deletion was seen, so
`active` and `reserved` are the worker's tasks at that moment (busy when either is above 0), and
it takes from the node (`Cluster.process_ends`) how the process ended (exit, SIGTERM, SIGKILL).
At the end it reads every triggered task instance's final state from Airflow's REST API and
cross-checks it against the lines the tasks appended to the output file. The result is a
`RunResult` with the simulator's columns and summary keys.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

from controllers.api import ELASTIC_WORKER_PLURAL, GROUP, VERSION
from controllers.kube.views import DRAIN_REPORT_ANNOTATION, DRAIN_STEP_ANNOTATION, OWNER_LABEL
from controllers.metrics.store import cluster_key, decode
from harness.e2e.airflow_api import AirflowAPI, AirflowAPIError
from harness.e2e.dagfiles import read_output
from harness.e2e.providers import Cluster, ProcessEnd
from harness.results import (
    EVENT_COLUMNS,
    TASK_COLUMNS,
    TERMINATION_COLUMNS,
    TIMELINE_COLUMNS,
    RunResult,
    check_expectations,
    summarize,
)
from harness.scenario import Scenario

SAMPLE_SECONDS = 1.0
RSS_SECONDS = 2.0
WATCH_SECONDS = 5  # a stop waits at most this long for a watch to return
#: A failed task counts as killed when its worker's process ended this close to (or before)
#: the task's end.
KILL_SLACK = 10.0
TERMINAL_TASK_EVENTS = frozenset(
    {"task-succeeded", "task-failed", "task-revoked", "task-rejected", "task-retried"}
)
SERVING = "serving"
DRAINING_STEPS = ("cordon-requested", "cordoned")
_STEP_EVENTS = {
    "cordon-requested": ("cordon", "requested"),
    "cordoned": ("cordon", "acknowledged"),
    "marked": ("mark", ""),
    "uncordon-requested": ("uncordon", "requested"),
}


def epoch(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 / RFC 3339 time (None stays None)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def nodename(pod: str) -> str:
    return f"celery@{pod}"


@dataclass
class Trigger:
    """One DAG run the runner triggered (or tried to)."""

    dag: str
    number: int
    run_id: str
    at: float  # scheduled, seconds from the start of the workload
    durations: dict[str, float]
    triggered_at: float | None = None  # epoch seconds the API accepted it
    error: str | None = None


@dataclass
class PodTrack:
    """One pod's life as the API server showed it (epoch seconds as observed)."""

    name: str
    uid: str
    seen_at: float
    created_at: float
    phase: str = "Pending"
    step: str = SERVING
    report: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    running_at: float | None = None
    deletion_at: float | None = None
    deletion_timestamp: str | None = None
    labels_at_deletion: dict[str, str] | None = None
    step_at_deletion: str | None = None
    tasks_at_deletion: tuple[int, int] = (0, 0)  # (active, reserved) as known when seen
    gone_at: float | None = None
    restarts: int = 0

    @property
    def deleting(self) -> bool:
        return self.deletion_at is not None

    @property
    def live(self) -> bool:
        return self.gone_at is None and not self.deleting and self.phase in ("Pending", "Running")

    @property
    def running(self) -> bool:
        return self.live and self.phase == "Running"


@dataclass(frozen=True)
class View:
    """What the auditor sees now (for the runner's waits and the tests' fault triggers)."""

    at: float
    desired: int | None
    live: int
    running: int
    serving: int
    draining: int
    terminating: int
    steps: dict[str, str]  # live pod -> drain step


@dataclass
class _CeleryEvent:
    timestamp: float  # the worker's clock (same host in the local cluster)
    received: float
    kind: str
    hostname: str
    uuid: str | None


class Auditor:
    """Watches a run independently of the operator; `start()`, `set_t0()`, `stop()`, `audit()`."""

    def __init__(
        self,
        cluster: Cluster,
        scenario: Scenario,
        elastic_worker: str,
        *,
        mark_label: dict[str, str],
        target: float,
        min_replicas: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cluster = cluster
        self.scenario = scenario
        self.elastic_worker = elastic_worker
        self.namespace = cluster.namespace
        self.mark_label = dict(mark_label)
        self.target = float(target)
        self.min_replicas = min_replicas
        self.clock = clock
        self.t0: float | None = None
        self.pods: dict[str, PodTrack] = {}  # by uid
        self.ew_spec_replicas: int | None = None
        self.ew_desired: int | None = None
        self.celery: list[_CeleryEvent] = []
        self.tasks_now: dict[str, list[str]] = {}  # uuid -> [hostname, "reserved"|"active"]
        self.workers_seen: dict[str, float] = {}  # node -> last online/heartbeat (not offline)
        self.events: list[tuple[float, str, str, str]] = []  # epoch, kind, pod, detail
        self.timeline: list[tuple] = []
        self.max_live = 0
        self.peak_rss = 0
        self.rss_at_peak: dict[str, int] = {}
        self.rss_samples: list[tuple[float, int]] = []
        self.errors: list[str] = []
        self.watch_events = 0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._receiver: Any = None
        self._redis: Any = None
        self._amqp: Any = None

    # -- life ----------------------------------------------------------------------------------

    def start(self) -> Auditor:
        api = self.cluster.api_client()
        core = k8s.CoreV1Api(api)
        custom = k8s.CustomObjectsApi(api)
        selector = f"{OWNER_LABEL}={self.elastic_worker}"
        targets: list[tuple[str, Callable[[], None]]] = [
            (
                "pods",
                lambda: self._watch(
                    core.list_namespaced_pod,
                    (self.namespace,),
                    {"label_selector": selector},
                    self._on_pod,
                    self._on_pod_gone,
                ),
            ),
            (
                "elasticworker",
                lambda: self._watch(
                    custom.list_namespaced_custom_object,
                    (GROUP, VERSION, self.namespace, ELASTIC_WORKER_PLURAL),
                    {"field_selector": f"metadata.name={self.elastic_worker}"},
                    self._on_elastic_worker,
                    lambda uid: None,
                ),
            ),
            ("celery-events", self._receive_events),
            ("sampler", self._sample_loop),
        ]
        for name, target in targets:
            thread = threading.Thread(target=target, name=f"auditor-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def set_t0(self, t0: float) -> None:
        with self._lock:
            self.t0 = t0

    def stop(self) -> None:
        """Stop the threads; take one last timeline row first."""
        if self._stop.is_set():
            return
        with contextlib.suppress(Exception):
            self._sample()
        self._stop.set()
        receiver = self._receiver
        if receiver is not None:
            receiver.should_stop = True
        for thread in self._threads:
            thread.join(WATCH_SECONDS + 15)
        for conn in (self._amqp, self._redis):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    # -- the watches -----------------------------------------------------------------------------

    def _watch(
        self,
        list_fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        on_object: Callable[[str, dict[str, Any], float], None],
        on_gone: Callable[[str], None],
    ) -> None:
        """List, then watch from the listed version; list again after any error (missed
        deletions are found by comparing the listings)."""
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    response = list_fn(*args, **kwargs, _preload_content=False)
                    listing = json.loads(response.data)
                    now = self.clock()
                    present = set()
                    for item in listing.get("items") or []:
                        present.add(item["metadata"]["uid"])
                        on_object("SYNC", item, now)
                    for uid in self._known_uids(on_object) - present:
                        on_gone(uid)
                    version = listing["metadata"]["resourceVersion"]
                watcher = k8s_watch.Watch()
                for event in watcher.stream(
                    list_fn,
                    *args,
                    **kwargs,
                    resource_version=version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=WATCH_SECONDS,
                    _request_timeout=WATCH_SECONDS + 15,
                    deserialize=False,
                ):
                    obj = event["object"]
                    kind = event["type"]
                    if kind == "ERROR":
                        raise RuntimeError(f"watch error: {obj}")
                    version = obj["metadata"]["resourceVersion"]
                    if kind != "BOOKMARK":
                        self.watch_events += 1
                        on_object(kind, obj, self.clock())
                    if self._stop.is_set():
                        watcher.stop()
                        break
            except Exception as error:
                if self._stop.is_set():
                    return
                version = None
                self._note_error(f"watch {list_fn.__name__}: {error}")
                time.sleep(0.5)

    def _known_uids(self, on_object: Callable[..., Any]) -> set[str]:
        if on_object == self._on_pod:
            with self._lock:
                return {uid for uid, p in self.pods.items() if p.gone_at is None}
        return set()

    def _note_error(self, message: str) -> None:
        with self._lock:
            if len(self.errors) < 50:
                self.errors.append(message)

    def note_event(self, at: float, kind: str, pod: str = "", detail: str = "") -> None:
        """Add a row to the events table (epoch seconds): the runner's faults and restarts."""
        with self._lock:
            self.events.append((at, kind, pod, detail))

    def _on_pod(self, kind: str, pod: dict[str, Any], now: float) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        if kind == "DELETED":
            self._on_pod_gone(uid, now, pod)
            return
        status = pod.get("status") or {}
        annotations = meta.get("annotations") or {}
        with self._lock:
            track = self.pods.get(uid)
            if track is None:
                created = epoch(meta.get("creationTimestamp")) or now
                track = PodTrack(meta["name"], uid, now, min(created, now))
                self.pods[uid] = track
                self.note_event(now, "create", track.name, "")
            if track.gone_at is not None:
                return
            track.phase = status.get("phase") or "Pending"
            track.labels = dict(meta.get("labels") or {})
            if track.phase == "Running" and track.running_at is None:
                track.running_at = now
                self.note_event(now, "running", track.name, "")
            restarts = sum(
                int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or []
            )
            if restarts > track.restarts:
                self.note_event(now, "crash", track.name, f"container restarted ({restarts})")
                track.restarts = restarts
            step = annotations.get(DRAIN_STEP_ANNOTATION) or SERVING
            if step != track.step:
                kind_detail = _STEP_EVENTS.get(step)
                if kind_detail is not None:
                    self.note_event(now, kind_detail[0], track.name, kind_detail[1])
                elif step == SERVING and track.step == "uncordon-requested":
                    self.note_event(now, "uncordon", track.name, "serving again")
                track.step = step
            report = annotations.get(DRAIN_REPORT_ANNOTATION)
            if report and report != track.report:
                self.note_event(now, "verify", track.name, report)
            track.report = report
            if meta.get("deletionTimestamp") and track.deletion_at is None:
                track.deletion_at = now
                track.deletion_timestamp = meta.get("deletionTimestamp")
                track.labels_at_deletion = dict(track.labels)
                track.step_at_deletion = track.step
                track.tasks_at_deletion = self._tasks_now_of(track.name)
                self.note_event(now, "delete", track.name, f"drain step {track.step}")
            self._update_max()

    def _on_pod_gone(self, uid: str, now: float | None = None, pod: Any = None) -> None:
        now = self.clock() if now is None else now
        with self._lock:
            track = self.pods.get(uid)
            if track is None or track.gone_at is not None:
                return
            if track.deletion_at is None:  # deleted at once (grace 0) or missed
                track.deletion_at = now
                track.labels_at_deletion = dict(track.labels)
                track.step_at_deletion = track.step
                track.tasks_at_deletion = self._tasks_now_of(track.name)
                self.note_event(now, "delete", track.name, f"drain step {track.step}")
            track.gone_at = now
            self.note_event(now, "gone", track.name, "")

    def _tasks_now_of(self, pod: str) -> tuple[int, int]:
        host = nodename(pod)
        states = [state for h, state in self.tasks_now.values() if h == host]
        return states.count("active"), states.count("reserved")

    def _update_max(self) -> None:
        live = sum(1 for p in self.pods.values() if p.live)
        self.max_live = max(self.max_live, live)

    def _on_elastic_worker(self, kind: str, ew: dict[str, Any], now: float) -> None:
        if kind == "DELETED":
            return
        spec, status = ew.get("spec") or {}, ew.get("status") or {}
        replicas = spec.get("replicas")
        desired = status.get("desiredReplicas")
        with self._lock:
            if isinstance(replicas, int) and replicas != self.ew_spec_replicas:
                if self.ew_spec_replicas is not None:
                    self.note_event(now, "scale", "", f"{self.ew_spec_replicas} -> {replicas}")
                self.ew_spec_replicas = replicas
            if isinstance(desired, int):
                self.ew_desired = desired

    # -- Celery events ---------------------------------------------------------------------------

    def _receive_events(self) -> None:
        from celery import Celery

        app = Celery("elastic-airflow-auditor", broker=self.cluster.broker_url)
        app.conf.broker_connection_retry_on_startup = True
        while not self._stop.is_set():
            try:
                with app.connection_for_read() as conn:
                    conn.ensure_connection(max_retries=3)
                    receiver = app.events.Receiver(conn, handlers={"*": self._on_celery})
                    self._receiver = receiver
                    if self._stop.is_set():
                        return
                    receiver.capture(limit=None, timeout=None, wakeup=True)
            except Exception as error:
                if self._stop.is_set():
                    return
                self._note_error(f"celery events: {error}")
                time.sleep(1.0)

    def _on_celery(self, event: dict[str, Any]) -> None:
        kind = str(event.get("type") or "")
        hostname = str(event.get("hostname") or "")
        now = self.clock()
        if kind in ("worker-online", "worker-heartbeat"):
            with self._lock:
                self.workers_seen[hostname] = now
        elif kind == "worker-offline":
            with self._lock:
                self.workers_seen.pop(hostname, None)
        if not kind.startswith("task-") and kind not in ("worker-online", "worker-offline"):
            return
        stamp = event.get("timestamp")
        timestamp = float(stamp) if isinstance(stamp, int | float) else now
        uuid = event.get("uuid")
        with self._lock:
            self.celery.append(_CeleryEvent(timestamp, now, kind, hostname, uuid))
            if uuid is None:
                if kind == "worker-offline":
                    self.tasks_now = {u: v for u, v in self.tasks_now.items() if v[0] != hostname}
                return
            if kind == "task-received":
                self.tasks_now[uuid] = [hostname, "reserved"]
            elif kind == "task-started":
                self.tasks_now[uuid] = [hostname, "active"]
            elif kind in TERMINAL_TASK_EVENTS:
                self.tasks_now.pop(uuid, None)

    def workers_online(self) -> set[str]:
        """The Celery nodes that said they are online (or sent a heartbeat) and not offline."""
        with self._lock:
            return set(self.workers_seen)

    def worker_tasks_at(self, pod: str, at: float) -> tuple[int, int]:
        """(active, reserved) of the pod's worker at `at`, replayed from its own events."""
        host = nodename(pod)
        received: set[str] = set()
        started: set[str] = set()
        ended: set[str] = set()
        with self._lock:
            events = [e for e in self.celery if e.hostname == host and e.uuid is not None]
        for e in sorted(events, key=lambda e: e.timestamp):
            if e.timestamp > at:
                break
            assert e.uuid is not None
            if e.kind == "task-received":
                received.add(e.uuid)
            elif e.kind == "task-started":
                started.add(e.uuid)
            elif e.kind in TERMINAL_TASK_EVENTS:
                ended.add(e.uuid)
        active = len(started - ended)
        reserved = len(received - started - ended)
        return active, reserved

    # -- sampling --------------------------------------------------------------------------------

    def _sample_loop(self) -> None:
        next_rss = 0.0
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                if self.t0 is not None:
                    self._sample()
            except Exception as error:
                self._note_error(f"sample: {error}")
            if began >= next_rss:
                next_rss = began + RSS_SECONDS
                try:
                    self._sample_rss()
                except Exception as error:
                    self._note_error(f"rss: {error}")
            self._stop.wait(max(0.0, SAMPLE_SECONDS - (time.monotonic() - began)))

    def _sample_rss(self) -> None:
        rss = self.cluster.rss_bytes()
        total = sum(rss.values())
        with self._lock:
            self.rss_samples.append((self.clock(), total))
            if total > self.peak_rss:
                self.peak_rss = total
                self.rss_at_peak = dict(rss)

    def view(self) -> View:
        with self._lock:
            pods = [p for p in self.pods.values() if p.gone_at is None]
            live = [p for p in pods if p.live]
            running = [p for p in live if p.running]
            desired = self.ew_desired if self.ew_desired is not None else self.ew_spec_replicas
            return View(
                at=self.clock(),
                desired=desired,
                live=len(live),
                running=len(running),
                serving=sum(1 for p in running if p.step == SERVING),
                draining=sum(1 for p in live if p.step in DRAINING_STEPS),
                terminating=sum(1 for p in pods if p.deleting),
                steps={p.name: p.step for p in live},
            )

    def _sample(self) -> None:
        if self.t0 is None:
            return
        v = self.view()
        load = self._load()
        depth = self._queue_depth()
        with self._lock:
            gone = {nodename(p.name) for p in self.pods.values() if p.gone_at is not None}
            states = [s for h, s in self.tasks_now.values() if h not in gone]
            desired = v.desired if v.desired is not None else self.min_replicas
            self.timeline.append(
                (
                    v.at - self.t0,
                    desired,
                    v.live,
                    v.running,
                    v.serving,
                    v.draining,
                    v.terminating,
                    load,
                    self.target,
                    depth,
                    states.count("active"),
                    states.count("reserved"),
                )
            )

    def _load(self) -> float:
        url = self.cluster.redis_url
        if url is None:
            return math.nan
        try:
            if self._redis is None:
                import redis

                self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
            reading = decode(self._redis.get(cluster_key(self.namespace, self.elastic_worker)))
        except Exception:
            self._redis = None
            return math.nan
        return math.nan if reading is None else float(reading.value)

    def _queue_depth(self) -> float:
        try:
            if self._amqp is None:
                from kombu import Connection

                self._amqp = Connection(self.cluster.broker_url, connect_timeout=2)
                self._amqp.ensure_connection(max_retries=1)
            ok = self._amqp.default_channel.queue_declare(queue=self.cluster.queue, passive=True)
            return float(ok.message_count)
        except Exception:
            if self._amqp is not None:
                with contextlib.suppress(Exception):
                    self._amqp.release()
            self._amqp = None
            return math.nan

    # -- the audit ---------------------------------------------------------------------------------

    def audit(
        self,
        api: AirflowAPI,
        triggers: list[Trigger],
        *,
        policy: str,
        seed: int,
        mode: str,
        end: float,
        extra: dict[str, Any] | None = None,
    ) -> RunResult:
        """The run's tables and summary; call after `stop()`, while Airflow still answers."""
        assert self.t0 is not None, "the workload never started"
        t0 = self.t0
        ends = self.cluster.process_ends()
        instances, api_errors = fetch_task_instances(api, triggers)
        output = read_output(self.cluster.output_file)
        with self._lock:
            pods = list(self.pods.values())
            by_name = {p.name: p for p in pods}

        def rel(value: float | None) -> float:
            return math.nan if value is None else value - t0

        tasks, checks = self._task_rows(triggers, instances, output, by_name, ends, rel, end)
        terminations = []
        for p in sorted(pods, key=lambda p: p.deletion_at or math.inf):
            if p.deletion_at is None or p.deletion_at < t0:
                continue
            # The worker's tasks replayed from its own event times up to the moment the
            # deletion was seen, and as the receiver knew them then: busy if either says so.
            active, reserved = self.worker_tasks_at(p.name, p.deletion_at)
            active = max(active, p.tasks_at_deletion[0])
            reserved = max(reserved, p.tasks_at_deletion[1])
            pe = ends.get(p.uid)
            ended_by = pe.ended_by if pe is not None else "unknown"
            ended_at = pe.finished_at if pe is not None and pe.finished_at else p.gone_at
            marked = all(
                (p.labels_at_deletion or {}).get(k) == v for k, v in self.mark_label.items()
            )
            reason = (
                f"marked ({p.step_at_deletion})" if marked else f"unmarked ({p.step_at_deletion})"
            )
            terminations.append(
                (
                    p.deletion_at - t0,
                    p.name,
                    active,
                    reserved,
                    active + reserved > 0,
                    ended_by,
                    rel(ended_at),
                    reason,
                )
            )
        worker_seconds = sum(
            max(0.0, min(p.gone_at or end, end) - max(p.created_at, t0)) for p in pods
        )
        events = [(at - t0, kind, pod, detail) for at, kind, pod, detail in self.events]
        events = [e for e in events if e[0] >= -1e-6]
        killed_executions = self._killed_executions(by_name, ends)
        result = RunResult(
            scenario=self.scenario.name,
            policy=policy,
            seed=seed,
            mode=mode,
            timeline=pd.DataFrame(self.timeline, columns=list(TIMELINE_COLUMNS)),
            tasks=pd.DataFrame(tasks, columns=list(TASK_COLUMNS)),
            terminations=pd.DataFrame(terminations, columns=list(TERMINATION_COLUMNS)),
            events=pd.DataFrame(sorted(events), columns=list(EVENT_COLUMNS)),
            sim_events=0,
            wall_seconds=end - t0,
        )
        result.extra.update(extra or {})
        result.extra.update(
            max_live=self.max_live,
            worker_seconds=worker_seconds,
            peak_rss_bytes=self.peak_rss,
            rss_at_peak=dict(sorted(self.rss_at_peak.items(), key=lambda kv: -kv[1])),
            celery_events=len(self.celery),
            watch_events=self.watch_events,
            killed_executions=killed_executions,
            auditor_errors=list(self.errors),
            audit=checks,
        )
        summary = summarize(result, worker_seconds)
        failures = check_expectations(self.scenario, summary)
        killed_rows = int((result.tasks["outcome"] == "killed").sum())
        if killed_executions > killed_rows:
            checks["problems"].append(
                f"{killed_executions} Celery execution(s) started on a worker whose process then "
                f"ended before the task did, but Airflow shows {killed_rows} killed task(s)"
            )
        failures += [f"audit: {p}" for p in checks["problems"]]
        failures += [f"audit: {e}" for e in api_errors]
        summary["expect_failures"] = failures
        result.summary = summary
        return result

    def _task_rows(
        self,
        triggers: list[Trigger],
        instances: dict[tuple[str, str, str], list[dict[str, Any]]],
        output: list[dict[str, Any]],
        by_name: dict[str, PodTrack],
        ends: dict[str, ProcessEnd],
        rel: Callable[[float | None], float],
        end: float,
    ) -> tuple[list[tuple], dict[str, Any]]:
        lines: dict[tuple[str, str, str, int], list[dict[str, Any]]] = defaultdict(list)
        for line in output:
            key = (
                line.get("dag_id"),
                line.get("run_id"),
                line.get("task_id"),
                line.get("try_number"),
            )
            lines[key].append(line)  # type: ignore[index]
        ours = {t.run_id for t in triggers}
        problems: list[str] = []
        rows: list[tuple] = []
        states: dict[str, int] = defaultdict(int)
        successes = 0
        for trig in sorted(triggers, key=lambda t: (t.dag, t.number)):
            if trig.error is not None:
                problems.append(f"{trig.dag} run {trig.run_id} was never triggered: {trig.error}")
            for task_id in task_ids(self.scenario, trig.dag):
                tries = instances.get((trig.dag, trig.run_id, task_id)) or []
                if not tries:
                    states["(none)"] += 1
                    rows.append((trig.dag, trig.number, task_id, 1, *[math.nan] * 3, "", "lost"))
                    continue
                for ti in tries:
                    state = ti.get("state") or "none"
                    states[state] += 1
                    worker = ti.get("hostname") or ""
                    started, ended = epoch(ti.get("start_date")), epoch(ti.get("end_date"))
                    queued = epoch(ti.get("queued_when")) or epoch(ti.get("scheduled_when"))
                    outcome = self._outcome(state, worker, ended, by_name, ends, end)
                    if outcome == "success":
                        successes += 1
                        key = (trig.dag, trig.run_id, task_id, ti.get("try_number"))
                        found = lines.get(key) or []  # type: ignore[arg-type]
                        if len(found) != 1:
                            problems.append(
                                f"{trig.run_id}/{task_id} succeeded in Airflow but has "
                                f"{len(found)} line(s) in the output file"
                            )
                        elif worker and found[0].get("pod") != worker:
                            problems.append(
                                f"{trig.run_id}/{task_id}: Airflow says it ran on {worker}, "
                                f"its output line says {found[0].get('pod')}"
                            )
                    rows.append(
                        (
                            trig.dag,
                            trig.number,
                            task_id,
                            int(ti.get("try_number") or 1),
                            rel(queued),
                            rel(started),
                            rel(ended),
                            worker,
                            outcome,
                        )
                    )
        our_lines = [line for line in output if line.get("run_id") in ours]
        if len(our_lines) != successes:
            problems.append(
                f"the output file has {len(our_lines)} line(s) of this run's tasks, "
                f"Airflow reports {successes} successful task(s)"
            )
        checks = {
            "task_instance_states": dict(states),
            "successful_task_instances": successes,
            "output_lines": len(output),
            "output_lines_of_this_run": len(our_lines),
            "expected_tasks": sum(len(task_ids(self.scenario, t.dag)) for t in triggers),
            "runs_triggered": sum(1 for t in triggers if t.error is None),
            "runs_scheduled": len(triggers),
            "problems": problems,
        }
        return rows, checks

    def _outcome(
        self,
        state: str,
        worker: str,
        ended: float | None,
        by_name: dict[str, PodTrack],
        ends: dict[str, ProcessEnd],
        end: float,
    ) -> str:
        if state == "success":
            return "success"
        if state == "running":
            track = by_name.get(worker)
            pe = ends.get(track.uid) if track else None
            if pe is None or pe.finished_at is None:
                return "running"
            return "killed"  # still "running" in Airflow, but its worker process is gone
        if state in ("failed", "up_for_retry", "up_for_reschedule"):
            track = by_name.get(worker)
            pe = ends.get(track.uid) if track else None
            limit = (ended if ended is not None else end) + KILL_SLACK
            if pe is not None and pe.finished_at is not None and pe.finished_at <= limit:
                return "killed"
        return "lost"

    def _killed_executions(self, by_name: dict[str, PodTrack], ends: dict[str, ProcessEnd]) -> int:
        """Celery executions started on a worker whose process then ended without the task
        ending: interrupted by a termination (or a crash)."""
        started: dict[str, str] = {}
        ended: set[str] = set()
        with self._lock:
            for e in self.celery:
                if e.uuid is None:
                    continue
                if e.kind == "task-started":
                    started[e.uuid] = e.hostname
                elif e.kind in TERMINAL_TASK_EVENTS:
                    ended.add(e.uuid)
        killed = 0
        for uuid, host in started.items():
            if uuid in ended:
                continue
            track = by_name.get(host.removeprefix("celery@"))
            pe = ends.get(track.uid) if track else None
            if (pe is not None and pe.finished_at is not None) or (track and track.gone_at):
                killed += 1
        return killed


def task_ids(scenario: Scenario, dag: str) -> list[str]:
    """The task ids of a scenario DAG as `harness.e2e.dagfiles` names them."""
    return [t.name or f"task_{i}" for i, t in enumerate(scenario.dags[dag].tasks, start=1)]


def fetch_task_instances(
    api: AirflowAPI, triggers: Iterable[Trigger]
) -> tuple[dict[tuple[str, str, str], list[dict[str, Any]]], list[str]]:
    """Every try of every task instance of the triggered runs: (dag, run, task) -> tries."""
    out: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    errors: list[str] = []
    wanted = {(t.dag, t.run_id) for t in triggers if t.error is None}
    for dag in sorted({d for d, _ in wanted}):
        try:
            listed = api.task_instances(dag, "~")
        except (AirflowAPIError, OSError) as error:
            errors.append(f"cannot list the task instances of {dag}: {error}")
            continue
        for ti in listed:
            run_id = ti.get("dag_run_id")
            if (dag, run_id) not in wanted:
                continue
            key = (dag, run_id, ti["task_id"])
            tries = [ti]
            if int(ti.get("try_number") or 1) > 1:
                with contextlib.suppress(AirflowAPIError, OSError, KeyError):
                    path = (
                        f"/api/v2/dags/{dag}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/tries"
                    )
                    history = api.request("GET", path).get("task_instances") or []
                    earlier = [h for h in history if h.get("try_number") != ti.get("try_number")]
                    tries = [*sorted(earlier, key=lambda h: h.get("try_number") or 0), ti]
            out[key] = tries
    return out, errors
