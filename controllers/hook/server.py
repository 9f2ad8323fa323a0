"""The drain hook's HTTP service (stdlib `ThreadingHTTPServer`, JSON in and out).

    POST /shutdownpods          cordon: cancel_consumer, then the tasks report
    POST /api/worker/shutdown   the same (the original prototype's path)
    POST /inspectpods           the tasks report, no cancelling
    POST /restorepods           add_consumer back (undo a cordon)
    GET  /healthz               the process serves (no broker check, no auth)
    GET  /readyz                the broker answers (no auth)

POST bodies are the original's `{"shutdown_workers": ["pod-a", ...]}`; the
answer is `{"workers": {"pod-a": {...}, ...}}` with one entry per pod (see
`controllers.hook.drain`), HTTP 200 whenever the request was well-formed and
authorised, even if every pod failed. With a token configured, POSTs need
`Authorization: Bearer <token>` (401 otherwise). A bad body is a 400 naming
the field. One log line per request.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from controllers.hook.naming import valid_pod_name

log = logging.getLogger("controllers.hook")

FIELD = "shutdown_workers"
MAX_BODY_BYTES = 64 * 1024
MAX_PODS = 1000

CORDON_PATHS = ("/shutdownpods", "/api/worker/shutdown")
INSPECT_PATH = "/inspectpods"
RESTORE_PATH = "/restorepods"


class Drainer(Protocol):
    queues: tuple[str, ...]

    def cordon(self, pods: Sequence[str]) -> dict[str, dict[str, Any]]: ...
    def inspect(self, pods: Sequence[str]) -> dict[str, dict[str, Any]]: ...
    def restore(self, pods: Sequence[str]) -> dict[str, dict[str, Any]]: ...
    def ping_broker(self) -> None: ...


class TokenSource:
    """The bearer token: from a file (re-read on each request, so a rotated
    Kubernetes Secret takes effect without a restart) or a fixed value.

    With neither, no authentication is required.
    """

    def __init__(self, token: str | None = None, token_file: str | Path | None = None) -> None:
        self.token_file = Path(token_file) if token_file else None
        self._token = token.strip() if token else None
        if self.token_file is not None:
            self._token = self._read()  # fail at start-up on a missing or empty file
        elif token is not None and not self._token:
            raise ValueError("the token is empty")

    def _read(self) -> str:
        assert self.token_file is not None
        token = self.token_file.read_text().strip()
        if not token:
            raise ValueError(f"token file {self.token_file} is empty")
        return token

    @property
    def required(self) -> bool:
        return self._token is not None

    def current(self) -> str | None:
        if self.token_file is not None:
            try:
                self._token = self._read()
            except (OSError, ValueError) as error:  # keep the last good token
                log.warning("cannot re-read token file: %s", error)
        return self._token

    def accepts(self, header: str | None) -> bool:
        token = self.current()
        if token is None:
            return True
        if not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), token.encode())


class BadRequest(Exception):
    pass


def parse_pods(body: bytes) -> list[str]:
    """The pod names of a request body; `BadRequest` naming the field otherwise."""
    try:
        data = json.loads(body or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequest(
            f"the body is not JSON ({error}); send {{{FIELD!r}: [pod names]}}"
        ) from None
    if not isinstance(data, dict):
        raise BadRequest(f"the body must be a JSON object with field {FIELD!r}")
    if FIELD not in data:
        raise BadRequest(f"field {FIELD!r} is required (a list of pod names)")
    pods = data[FIELD]
    if not isinstance(pods, list):
        raise BadRequest(f"field {FIELD!r} must be a list of pod names")
    if len(pods) > MAX_PODS:
        raise BadRequest(f"field {FIELD!r} has {len(pods)} names, at most {MAX_PODS}")
    for index, pod in enumerate(pods):
        if not valid_pod_name(pod):
            raise BadRequest(f"field {FIELD!r}[{index}] is not a pod name: {pod!r}")
    return list(dict.fromkeys(pods))


class HookServer(ThreadingHTTPServer):
    """The hook on (host, port); `port=0` picks a free one (see `.port`)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        drainer: Drainer,
        tokens: TokenSource | None = None,
    ) -> None:
        self.drainer = drainer
        self.tokens = tokens or TokenSource()
        super().__init__(address, HookHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.port}"

    def start_background(self, poll_interval: float = 0.1) -> threading.Thread:
        """Serve in a daemon thread (tests, embedding); stop with `shutdown()`."""
        thread = threading.Thread(
            target=self.serve_forever, args=(poll_interval,), name="hook-http", daemon=True
        )
        thread.start()
        return thread


class HookHandler(BaseHTTPRequestHandler):
    server: HookServer
    server_version = "elastic-airflow-hook/1"

    # -- plumbing ------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request is written by `_handle`

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None):
        body = json.dumps(payload, sort_keys=True).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    def _handle(self, route: Callable[[], tuple[int, dict[str, Any], dict[str, str]]]) -> None:
        started = time.monotonic()
        self._status = 0
        self._pods: list[str] = []
        try:
            status, payload, headers = route()
        except BadRequest as error:
            status, payload, headers = HTTPStatus.BAD_REQUEST, {"error": str(error)}, {}
        except Exception as error:  # never leave a client without an answer
            log.exception("hook: %s %s failed", self.command, self.path)
            status, payload, headers = 500, {"error": f"internal error: {error!r}"}, {}
        with contextlib.suppress(OSError):  # the client went away
            self._send(status, payload, headers)
        log.info(
            "%s %s %s %d pods=%d %.3fs",
            self.client_address[0],
            self.command,
            self.path,
            status,
            len(self._pods),
            time.monotonic() - started,
        )

    # -- routes --------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._handle(self._get)

    def do_POST(self) -> None:
        self._handle(self._post)

    def _get(self) -> tuple[int, dict[str, Any], dict[str, str]]:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            return 200, {"status": "ok", "queues": list(self.server.drainer.queues)}, {}
        if path == "/readyz":
            try:
                self.server.drainer.ping_broker()
            except Exception as error:
                return 503, {"status": "broker unreachable", "error": str(error)}, {}
            return 200, {"status": "ok"}, {}
        if path in (*CORDON_PATHS, INSPECT_PATH, RESTORE_PATH):
            return 405, {"error": f"{path} takes POST"}, {"Allow": "POST"}
        return 404, {"error": f"no such path: {path}"}, {}

    def _post(self) -> tuple[int, dict[str, Any], dict[str, str]]:
        path = self.path.split("?", 1)[0]
        drainer = self.server.drainer
        operations = {INSPECT_PATH: drainer.inspect, RESTORE_PATH: drainer.restore}
        operations.update(dict.fromkeys(CORDON_PATHS, drainer.cordon))
        if path not in operations:
            if path in ("/healthz", "/readyz"):
                return 405, {"error": f"{path} takes GET"}, {"Allow": "GET"}
            return 404, {"error": f"no such path: {path}"}, {}
        if not self.server.tokens.accepts(self.headers.get("Authorization")):
            return 401, {"error": "missing or wrong bearer token"}, {"WWW-Authenticate": "Bearer"}
        pods = parse_pods(self._body())
        self._pods = pods
        started = time.monotonic()
        workers = operations[path](pods)
        return 200, {"workers": workers, "took": round(time.monotonic() - started, 3)}, {}

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            raise BadRequest(f"a JSON body with field {FIELD!r} is required (no Content-Length)")
        try:
            size = int(length)
        except ValueError:
            raise BadRequest(f"bad Content-Length: {length!r}") from None
        if size < 0 or size > MAX_BODY_BYTES:
            raise BadRequest(f"the body must be 0 to {MAX_BODY_BYTES} bytes, not {size}")
        return self.rfile.read(size)
