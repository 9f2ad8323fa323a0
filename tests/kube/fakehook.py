"""A drain hook stand-in that speaks the hook's HTTP contract, with workers the test controls.

It answers `POST /shutdownpods`, `/inspectpods`, `/restorepods` like `controllers.hook.server`
(`{"workers": {pod: {acknowledged, active, reserved, consuming, at}}}`), records every call with
the drain step the pod carried at that moment (read from the API server), and can be told that
a worker picked a task up in the race window (`busy`) or that the hook is down (`failing`).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubernetes import client

from controllers.kube.views import DRAIN_STEP_ANNOTATION

TOKEN = "test-token"


@dataclass
class Call:
    path: str
    pods: list[str]
    steps: dict[str, str | None]  # the pods' drain-step annotations when the call arrived
    at: float


@dataclass
class FakeHook:
    core: client.CoreV1Api
    namespace: str
    busy: dict[str, int] = field(default_factory=dict)  # pod -> active tasks
    busy_first_cordoned: bool = False  # the first pod ever cordoned took a task meanwhile
    failing: bool = False
    restarted: set[str] = field(default_factory=set)  # workers consuming again after a cordon
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> FakeHook:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._send(401, {"error": "unauthorized"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                pods = json.loads(self.rfile.read(length))["shutdown_workers"]
                status, body = hook.answer(self.path, pods)
                self._send(status, body)

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _step(self, pod: str) -> str | None:
        try:
            meta = self.core.read_namespaced_pod(pod, self.namespace).metadata
        except client.ApiException:
            return None
        return (meta.annotations or {}).get(DRAIN_STEP_ANNOTATION)

    def answer(self, path: str, pods: list[str]) -> tuple[int, dict[str, Any]]:
        steps = {pod: self._step(pod) for pod in pods}
        with self.lock:
            self.calls.append(Call(path, list(pods), steps, time.time()))
            if self.failing:
                return 503, {"error": "hook down"}
            if path == "/shutdownpods":
                self.restarted.difference_update(pods)  # cordoned again
            if path == "/shutdownpods" and self.busy_first_cordoned and pods:
                self.busy_first_cordoned = False
                self.busy[pods[0]] = 1
            workers = {}
            for pod in pods:
                if path == "/restorepods":
                    workers[pod] = {"acknowledged": True, "consuming": ["default"]}
                elif path == "/inspectpods" and pod in self.restarted:
                    workers[pod] = {
                        "acknowledged": True,
                        "active": 0,
                        "reserved": 0,
                        "consuming": ["default"],
                        "at": time.time(),
                    }
                else:
                    workers[pod] = {
                        "acknowledged": True,
                        "active": self.busy.get(pod, 0),
                        "reserved": 0,
                        "scheduled": 0,
                        "consuming": [],
                        "at": time.time(),
                    }
            return 200, {"workers": workers}

    def calls_to(self, path: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.path == path]

    def cordoned(self) -> list[str]:
        return [pod for call in self.calls_to("/shutdownpods") for pod in call.pods]
