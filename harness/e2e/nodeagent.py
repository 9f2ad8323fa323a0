"""A kubelet stand-in for the local control plane: runs pod commands as processes.

The local control plane has no scheduler and no kubelet. This agent registers
the node `local`, binds unscheduled pods of the default scheduler to it, runs
the first container's `command + args` as a local process (the image is never
pulled or run), reports pod status like a kubelet, and honours graceful
deletion: SIGTERM to the process group, SIGKILL after the grace period, then
the final delete. Each pod's pids, exit codes and signal times are kept for
auditors (`pod_records()`).

    agent = NodeAgent(kubeconfig="kubeconfig.yaml").start()
    ...
    agent.stop()

or `python -m harness.e2e.nodeagent --kubeconfig kubeconfig.yaml`.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.rest import ApiException

from harness.managed import Managed

log = logging.getLogger(__name__)

NODE_NAME = "local"
NODE_IP = "127.0.0.1"
DEFAULT_SCHEDULER = "default-scheduler"
DEFAULT_GRACE_SECONDS = 30
# Much shorter than the kubelet's 10 s .. 5 min: tests wait for restarts.
RESTART_BACKOFF_BASE = 1.0
RESTART_BACKOFF_MAX = 30.0
HEARTBEAT_SECONDS = 20.0
_TICK_SECONDS = 0.1
_TERMINAL_PHASES = ("Succeeded", "Failed")
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")

Pod = dict[str, Any]


@dataclass
class PodRecord:
    """What happened to one pod on this node, for auditors. Times are epoch seconds."""

    namespace: str
    name: str
    uid: str
    workdir: Path
    log_path: Path
    pids: list[int] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    restarts: int = 0
    started_at: float | None = None
    sigterm_at: float | None = None
    sigkill_at: float | None = None
    finished_at: float | None = None
    deleted_at: float | None = None

    @property
    def exit_code(self) -> int | None:
        """Exit code of the latest run (128 + n when killed by signal n)."""
        return self.exit_codes[-1] if self.exit_codes else None


@dataclass
class _PodRun:
    """Mutable per-pod state, touched by the worker thread only."""

    record: PodRecord
    pod: Pod
    start_time: str
    proc: subprocess.Popen[bytes] | None = None
    container_started: str = ""
    last_terminated: dict[str, Any] | None = None
    restart_at: float | None = None
    kill_at: float | None = None
    grace: float | None = None
    terminating: bool = False
    finished: bool = False
    finalize_retry_at: float | None = None


def _rfc3339(epoch: float | None = None) -> str:
    moment = dt.datetime.fromtimestamp(epoch if epoch is not None else time.time(), dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _exit_code(returncode: int) -> int:
    # Container runtimes report death by signal n as 128 + n.
    return 128 - returncode if returncode < 0 else returncode


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def expand_vars(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: unknown references stay, `$$` escapes."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR_REF.sub(replace, text)


def _field_ref(pod: Pod, path: str) -> str | None:
    meta, spec = pod["metadata"], pod.get("spec", {})
    values = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": NODE_IP,
        "status.hostIP": NODE_IP,
    }
    return values.get(path)


def container_env(pod: Pod, container: dict[str, Any], base: dict[str, str]) -> dict[str, str]:
    """The process environment: `base`, pod identity, then the container's env."""
    meta = pod["metadata"]
    env = dict(base)
    env.update(HOSTNAME=meta["name"], POD_NAME=meta["name"], POD_NAMESPACE=meta["namespace"])
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = expand_vars(item["value"] or "", env)
        elif "fieldRef" in (item.get("valueFrom") or {}):
            value = _field_ref(pod, item["valueFrom"]["fieldRef"]["fieldPath"])
            if value is not None:
                env[item["name"]] = value
        else:
            log.warning("pod %s: env %s source not supported, skipped", meta["name"], item["name"])
    return env


def _is_default_scheduled(pod: Pod) -> bool:
    return pod.get("spec", {}).get("schedulerName") in (None, "", DEFAULT_SCHEDULER)


class NodeAgent(Managed):
    """Runs the pods of one node as local processes; `start()` / `stop()` or `with`.

    Pod work dirs and logs live under `workdir` (a temp dir removed on stop
    unless given, or unless EA_KEEP_NODEAGENT_DIR=1).
    """

    def __init__(
        self,
        api_client: k8s_client.ApiClient | None = None,
        *,
        kubeconfig: str | Path | None = None,
        node_name: str = NODE_NAME,
        workdir: Path | None = None,
        inherit_env: bool = True,
        stop_timeout: float = 5.0,
        watch_timeout: int = 2,
    ) -> None:
        if api_client is None:
            api_client = k8s_config.new_client_from_config(
                config_file=str(kubeconfig) if kubeconfig else None
            )
        self._core = k8s_client.CoreV1Api(api_client)
        self.node_name = node_name
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="ea-nodeagent-"))
        # Inheriting lets pod commands find this interpreter's packages (the
        # worker under test); a real container would start from its image's env.
        self._base_env = dict(os.environ) if inherit_env else {"PATH": os.defpath}
        self.stop_timeout = stop_timeout
        self.watch_timeout = watch_timeout
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._runs: dict[str, _PodRun] = {}
        self._records: dict[str, PodRecord] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_heartbeat = 0.0
        self._ready_since = _rfc3339()

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> NodeAgent:
        """Register the node and start the watch and worker threads."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._register_node()
        for target, name in ((self._watch_loop, "watch"), (self._work_loop, "worker")):
            thread = threading.Thread(target=target, name=f"nodeagent-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop the threads and end every child process by pid (SIGTERM, then SIGKILL)."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(self.watch_timeout + 10)
        self._threads.clear()
        self._terminate_all()
        if self._own_workdir and os.environ.get("EA_KEEP_NODEAGENT_DIR") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _terminate_all(self) -> None:
        running = [run for run in self._runs.values() if run.proc is not None]
        for run in running:
            self._send(run, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for run in running:
            proc = run.proc
            assert proc is not None
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._send(run, signal.SIGKILL)
                proc.wait()
            _signal_group(proc.pid, signal.SIGKILL)
            run.proc = None
            self._record_exit(run, proc.returncode)

    # -- auditing ------------------------------------------------------------

    def pod_records(self) -> list[PodRecord]:
        """Copies of all pod records, oldest first."""
        with self._lock:
            return [copy.deepcopy(record) for record in self._records.values()]

    def record(self, namespace: str, name: str) -> PodRecord | None:
        """The latest record of the pod `namespace/name`, if it ever ran here."""
        matches = [r for r in self.pod_records() if (r.namespace, r.name) == (namespace, name)]
        return matches[-1] if matches else None

    def live_pids(self) -> list[int]:
        """Pids of pod processes this agent still has running."""
        procs = [run.proc for run in list(self._runs.values())]
        return [proc.pid for proc in procs if proc is not None]

    # -- node ----------------------------------------------------------------

    def _node_status(self) -> dict[str, Any]:
        now = _rfc3339()
        resources = {"cpu": str(os.cpu_count() or 1), "memory": "8Gi", "pods": "110"}
        return {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "elastic-airflow node agent is posting ready status",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": self._ready_since,
                }
            ],
            "addresses": [
                {"type": "InternalIP", "address": NODE_IP},
                {"type": "Hostname", "address": self.node_name},
            ],
            "capacity": resources,
            "allocatable": resources,
        }

    def _register_node(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                },
            },
        }
        try:
            self._core.create_node(body)
        except ApiException as error:
            if error.status != 409:
                raise
        self._heartbeat()

    def _heartbeat(self) -> None:
        self._core.patch_node_status(self.node_name, {"status": self._node_status()})
        self._last_heartbeat = time.monotonic()

    # -- watch thread ----------------------------------------------------------

    def _watch_loop(self) -> None:
        resource_version: str | None = None
        while not self._stopping.is_set():
            try:
                if resource_version is None:
                    resource_version = self._relist()
                resource_version = self._watch_once(resource_version)
            except Exception as error:
                # Any hiccup (410 Gone, a dropped connection): list again, so
                # no event is lost for good.
                if not self._stopping.is_set():
                    log.info("pod watch restarts after: %s", error)
                    time.sleep(0.5)
                resource_version = None

    def _relist(self) -> str:
        pods = self._core.list_pod_for_all_namespaces(_preload_content=False)
        document = _json(pods)
        items = document.get("items") or []
        for pod in items:
            self._events.put(("SYNC", pod))
        self._events.put(("PRESENT", {pod["metadata"]["uid"] for pod in items}))
        return str(document["metadata"]["resourceVersion"])

    def _watch_once(self, resource_version: str) -> str:
        watcher = k8s_watch.Watch()
        stream = watcher.stream(
            self._core.list_pod_for_all_namespaces,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_timeout,
            _request_timeout=self.watch_timeout + 10,
            deserialize=False,
        )
        for event in stream:
            pod = event["object"]
            resource_version = pod["metadata"]["resourceVersion"]
            if event["type"] != "BOOKMARK":
                self._events.put((event["type"], pod))
            if self._stopping.is_set():
                watcher.stop()
        return resource_version

    # -- worker thread ---------------------------------------------------------

    def _work_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                kind, payload = self._events.get(timeout=_TICK_SECONDS)
            except queue.Empty:
                kind, payload = "", None
            try:
                if kind:
                    self._dispatch(kind, payload)
                self._tick()
            except Exception:
                log.exception("node agent: event %s failed", kind or "tick")

    def _dispatch(self, kind: str, payload: Any) -> None:
        if kind == "PRESENT":
            self._forget_missing(payload)
        elif kind == "DELETED":
            self._on_deleted(payload)
        else:
            self._on_pod(payload)

    def _forget_missing(self, present_uids: set[str]) -> None:
        for uid, run in list(self._runs.items()):
            if uid not in present_uids:
                self._on_deleted(run.pod)

    def _on_pod(self, pod: Pod) -> None:
        meta, spec = pod["metadata"], pod.get("spec", {})
        node = spec.get("nodeName")
        if not node:
            self._maybe_bind(pod)
            return
        uid = meta["uid"]
        if node != self.node_name or self._already_deleted(uid):
            return
        run = self._runs.get(uid)
        if run is None:
            if meta.get("deletionTimestamp") or pod.get("status", {}).get("phase") in (
                _TERMINAL_PHASES
            ):
                # Nothing runs for it here (e.g. left over from an earlier agent).
                if meta.get("deletionTimestamp"):
                    self._finalize_delete(pod)
                return
            run = self._admit(pod)
        run.pod = pod
        if meta.get("deletionTimestamp"):
            self._begin_termination(run)

    def _already_deleted(self, uid: str) -> bool:
        record = self._records.get(uid)
        return record is not None and record.deleted_at is not None

    def _on_deleted(self, pod: Pod) -> None:
        # Force-deleted (grace 0) or gone while the watch was down: the
        # process must still go, and no delete is left to finalise.
        run = self._runs.pop(pod["metadata"]["uid"], None)
        if run is None:
            return
        if run.proc is not None:
            self._send(run, signal.SIGKILL)
        self._set_record(run, deleted_at=time.time())
        if run.proc is not None:
            self._record_exit(run, run.proc.wait())

    def _maybe_bind(self, pod: Pod) -> None:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp") or not _is_default_scheduled(pod):
            return
        binding = k8s_client.V1Binding(
            metadata=k8s_client.V1ObjectMeta(name=meta["name"], uid=meta["uid"]),
            target=k8s_client.V1ObjectReference(api_version="v1", kind="Node", name=self.node_name),
        )
        try:
            # Raw response: the client cannot deserialise the Status this returns.
            self._core.create_namespaced_pod_binding(
                meta["name"], meta["namespace"], binding, _preload_content=False
            )
        except ApiException as error:
            if error.status not in (404, 409):
                raise

    # -- running processes ----------------------------------------------------

    def _admit(self, pod: Pod) -> _PodRun:
        meta = pod["metadata"]
        workdir = self.workdir / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
        workdir.mkdir(parents=True, exist_ok=True)
        record = PodRecord(
            meta["namespace"], meta["name"], meta["uid"], workdir, workdir / "container.log"
        )
        with self._lock:
            self._records[meta["uid"]] = record
        run = _PodRun(record=record, pod=pod, start_time=_rfc3339())
        self._runs[meta["uid"]] = run
        self._launch(run)
        return run

    def _launch(self, run: _PodRun) -> None:
        pod = run.pod
        container = pod["spec"]["containers"][0]
        env = container_env(pod, container, self._base_env)
        argv = [expand_vars(arg, env) for arg in container.get("command") or []]
        argv += [expand_vars(arg, env) for arg in container.get("args") or []]
        if not container.get("command"):
            self._start_failed(run, "container has no command; images are not run here")
            return
        working_dir = container.get("workingDir")
        cwd = working_dir if working_dir and Path(working_dir).is_dir() else run.record.workdir
        try:
            with open(run.record.log_path, "ab") as output:
                proc = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    # A process group per pod, so signals reach the whole "container".
                    start_new_session=True,
                )
        except OSError as error:
            self._start_failed(run, str(error))
            return
        now = time.time()
        run.proc = proc
        run.container_started = _rfc3339(now)
        with self._lock:
            run.record.pids.append(proc.pid)
            if run.record.started_at is None:
                run.record.started_at = now
        self._report(run, self._running_status(run))

    def _start_failed(self, run: _PodRun, message: str) -> None:
        # Like the kubelet's StartError: exit code 128, then the restart policy.
        log.warning("pod %s: start failed: %s", run.record.name, message)
        run.container_started = _rfc3339()
        self._after_exit(run, 128, reason="StartError", message=message)

    def _tick(self) -> None:
        now = time.monotonic()
        for run in list(self._runs.values()):
            try:
                self._tick_run(run, now)
            except Exception:
                # One pod's API error must not stall the others' deadlines.
                log.exception("node agent: pod %s", run.record.name)
        if now - self._last_heartbeat >= HEARTBEAT_SECONDS:
            self._heartbeat()

    def _tick_run(self, run: _PodRun, now: float) -> None:
        if run.proc is not None and run.proc.poll() is not None:
            self._on_exit(run)
        if run.proc is not None and run.kill_at is not None and now >= run.kill_at:
            self._send(run, signal.SIGKILL)
            run.kill_at = None
        if run.restart_at is not None and now >= run.restart_at and not run.terminating:
            run.restart_at = None
            self._launch(run)
        retry_at = run.finalize_retry_at
        if retry_at is not None and now >= retry_at and self._runs.get(run.record.uid) is run:
            run.finalize_retry_at = None
            self._finalize_delete(run.pod)

    def _on_exit(self, run: _PodRun) -> None:
        proc = run.proc
        assert proc is not None
        # The main process is gone: like a container's PID namespace, take
        # any stragglers in its group with it.
        _signal_group(proc.pid, signal.SIGKILL)
        run.proc = None
        code = self._record_exit(run, proc.returncode)
        if run.terminating:
            self._finalize_delete(run.pod)
            return
        self._after_exit(run, code, reason="Completed" if code == 0 else "Error", message="")

    def _after_exit(self, run: _PodRun, code: int, reason: str, message: str) -> None:
        terminated = {
            "exitCode": code,
            "reason": reason,
            "message": message or None,
            "startedAt": run.container_started,
            "finishedAt": _rfc3339(),
            "containerID": self._container_id(run),
        }
        policy = run.pod["spec"].get("restartPolicy") or "Always"
        if policy == "Always" or (policy == "OnFailure" and code != 0):
            run.last_terminated = terminated
            backoff = min(RESTART_BACKOFF_BASE * 2**run.record.restarts, RESTART_BACKOFF_MAX)
            with self._lock:
                run.record.restarts += 1
            run.restart_at = time.monotonic() + backoff
            self._report(run, self._waiting_status(run, backoff))
            return
        run.finished = True
        self._report(run, self._terminal_status(run, terminated))
        if run.terminating:
            self._finalize_delete(run.pod)

    def _record_exit(self, run: _PodRun, returncode: int) -> int:
        code = _exit_code(returncode)
        with self._lock:
            if len(run.record.exit_codes) < len(run.record.pids):
                run.record.exit_codes.append(code)
                run.record.finished_at = time.time()
        return code

    def _send(self, run: _PodRun, signum: signal.Signals) -> None:
        if run.proc is None:
            return
        _signal_group(run.proc.pid, signum)
        field_name = "sigterm_at" if signum == signal.SIGTERM else "sigkill_at"
        if getattr(run.record, field_name) is None:
            self._set_record(run, **{field_name: time.time()})

    def _set_record(self, run: _PodRun, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(run.record, name, value)

    # -- deletion ------------------------------------------------------------

    def _grace_seconds(self, pod: Pod) -> float:
        meta, spec = pod["metadata"], pod.get("spec", {})
        for value in (
            meta.get("deletionGracePeriodSeconds"),
            spec.get("terminationGracePeriodSeconds"),
        ):
            if value is not None:
                return float(value)
        return float(DEFAULT_GRACE_SECONDS)

    def _begin_termination(self, run: _PodRun) -> None:
        grace = self._grace_seconds(run.pod)
        if run.terminating:
            # A second delete may shorten the grace period, never lengthen it.
            if run.grace is not None and grace < run.grace and run.kill_at is not None:
                run.kill_at = min(run.kill_at, time.monotonic() + grace)
                run.grace = grace
            return
        run.terminating = True
        run.restart_at = None
        if run.proc is None:
            self._finalize_delete(run.pod)
            return
        run.grace = grace
        self._send(run, signal.SIGTERM)
        run.kill_at = time.monotonic() + grace

    def _finalize_delete(self, pod: Pod) -> None:
        meta = pod["metadata"]
        run = self._runs.pop(meta["uid"], None)
        # Recorded before the call, so whoever sees the pod gone also sees this.
        if run is not None:
            self._set_record(run, deleted_at=time.time())
        options = k8s_client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=k8s_client.V1Preconditions(uid=meta["uid"])
        )
        try:
            self._core.delete_namespaced_pod(
                meta["name"], meta["namespace"], body=options, grace_period_seconds=0
            )
        except ApiException as error:
            # 404: already gone; 409: a new pod of the same name, not ours to delete.
            if error.status in (404, 409):
                return
            if run is not None:
                self._set_record(run, deleted_at=None)
                self._runs[meta["uid"]] = run
                run.finalize_retry_at = time.monotonic() + 1.0
            raise

    # -- status reports --------------------------------------------------------

    def _container_id(self, run: _PodRun) -> str:
        pid = run.record.pids[-1] if run.record.pids else 0
        return f"local://{pid}"

    def _report(self, run: _PodRun, status: dict[str, Any]) -> None:
        meta = run.pod["metadata"]
        # The uid makes the patch fail rather than touch a same-named successor.
        body = {"metadata": {"uid": meta["uid"]}, "status": status}
        try:
            self._core.patch_namespaced_pod_status(meta["name"], meta["namespace"], body)
        except ApiException as error:
            if error.status not in (404, 409, 422):
                raise
            log.info("pod %s: status not reported (%s)", meta["name"], error.status)

    def _base_status(self, run: _PodRun, phase: str, ready: bool) -> dict[str, Any]:
        now = _rfc3339()
        flag = "True" if ready else "False"
        return {
            "phase": phase,
            "hostIP": NODE_IP,
            "hostIPs": [{"ip": NODE_IP}],
            "podIP": NODE_IP,
            "podIPs": [{"ip": NODE_IP}],
            "startTime": run.start_time,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": run.start_time},
                {"type": "Initialized", "status": "True", "lastTransitionTime": run.start_time},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
                {"type": "Ready", "status": flag, "lastTransitionTime": now},
            ],
        }

    def _container_status(
        self, run: _PodRun, state: dict[str, Any], ready: bool
    ) -> list[dict[str, Any]]:
        container = run.pod["spec"]["containers"][0]
        status = {
            "name": container["name"],
            "image": container.get("image") or "",
            "imageID": "",
            "containerID": self._container_id(run),
            "ready": ready,
            "started": "running" in state,
            "restartCount": run.record.restarts,
            "state": state,
        }
        if run.last_terminated is not None:
            status["lastState"] = {"terminated": run.last_terminated}
        return [status]

    def _running_status(self, run: _PodRun) -> dict[str, Any]:
        status = self._base_status(run, "Running", ready=True)
        state = {"running": {"startedAt": run.container_started}}
        status["containerStatuses"] = self._container_status(run, state, ready=True)
        return status

    def _waiting_status(self, run: _PodRun, backoff: float) -> dict[str, Any]:
        status = self._base_status(run, "Running", ready=False)
        message = f"back-off {backoff:.0f}s restarting failed container"
        state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        status["containerStatuses"] = self._container_status(run, state, ready=False)
        return status

    def _terminal_status(self, run: _PodRun, terminated: dict[str, Any]) -> dict[str, Any]:
        phase = "Succeeded" if terminated["exitCode"] == 0 else "Failed"
        status = self._base_status(run, phase, ready=False)
        status["containerStatuses"] = self._container_status(
            run, {"terminated": terminated}, ready=False
        )
        return status


def _json(response: Any) -> dict[str, Any]:
    return json.loads(response.data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.e2e.nodeagent",
        description="Run the pods of a local control plane as local processes.",
    )
    parser.add_argument("--kubeconfig", required=True, help="admin kubeconfig of the cluster")
    parser.add_argument("--node-name", default=NODE_NAME)
    parser.add_argument("--workdir", type=Path, help="pod work dirs and logs (default: temp)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    agent = NodeAgent(kubeconfig=args.kubeconfig, node_name=args.node_name, workdir=args.workdir)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    agent.start()
    log.info("node %s ready; pod dirs under %s", agent.node_name, agent.workdir)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    finally:
        agent.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
