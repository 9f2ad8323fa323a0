"""The hook's HTTP surface and its client, with a recording drainer (no broker)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from controllers.core.types import TaskReport
from controllers.hook import celery_nodename, pod_name
from controllers.hook.__main__ import parse_args
from controllers.hook.client import HookClient, HookError, PodReply
from controllers.hook.naming import valid_pod_name
from controllers.hook.server import HookServer, TokenSource, parse_pods

TOKEN = "s3cret-token"


class RecordingDrainer:
    queues = ("default",)

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.broker_up = True

    def _answer(self, op: str, pods: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.calls.append((op, list(pods)))
        answers: dict[str, dict[str, Any]] = {}
        for pod in pods:
            if pod.startswith("gone"):
                answers[pod] = {"acknowledged": False, "error": f"no reply from celery@{pod}"}
            elif op == "restore":
                answers[pod] = {"acknowledged": True, "consuming": ["default"]}
            else:
                answers[pod] = {
                    "acknowledged": True,
                    "active": 1 if pod.startswith("busy") else 0,
                    "reserved": 0,
                    "scheduled": 0,
                    "consuming": [],
                    "at": 1700000000.5,
                }
        return answers

    def cordon(self, pods: Sequence[str]) -> dict[str, dict[str, Any]]:
        return self._answer("cordon", pods)

    def inspect(self, pods: Sequence[str]) -> dict[str, dict[str, Any]]:
        return self._answer("inspect", pods)

    def restore(self, pods: Sequence[str]) -> dict[str, dict[str, Any]]:
        return self._answer("restore", pods)

    def ping_broker(self) -> None:
        if not self.broker_up:
            raise ConnectionError("refused")


@pytest.fixture
def drainer() -> RecordingDrainer:
    return RecordingDrainer()


def _serve(drainer: RecordingDrainer, tokens: TokenSource) -> Iterator[HookServer]:
    server = HookServer(("127.0.0.1", 0), drainer, tokens)
    server.start_background()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server(drainer: RecordingDrainer) -> Iterator[HookServer]:
    yield from _serve(drainer, TokenSource(token=TOKEN))


def call(
    server: HookServer,
    method: str,
    path: str,
    body: bytes | None = None,
    token: str | None = TOKEN,
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(server.url + path, body, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def pods_body(*pods: str) -> bytes:
    return json.dumps({"shutdown_workers": list(pods)}).encode()


# --- endpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "op"),
    [
        ("/shutdownpods", "cordon"),
        ("/api/worker/shutdown", "cordon"),
        ("/inspectpods", "inspect"),
        ("/restorepods", "restore"),
    ],
)
def test_routes(server: HookServer, drainer: RecordingDrainer, path: str, op: str) -> None:
    status, body = call(server, "POST", path, pods_body("pod-a", "gone-b", "pod-a"))
    assert status == 200
    assert drainer.calls == [(op, ["pod-a", "gone-b"])]  # duplicates dropped, order kept
    assert set(body["workers"]) == {"pod-a", "gone-b"}
    assert body["workers"]["gone-b"] == {
        "acknowledged": False,
        "error": "no reply from celery@gone-b",
    }


def test_every_pod_failing_is_still_200(server: HookServer) -> None:
    status, body = call(server, "POST", "/shutdownpods", pods_body("gone-1", "gone-2"))
    assert status == 200
    assert all(not w["acknowledged"] for w in body["workers"].values())


def test_empty_list_is_fine(server: HookServer, drainer: RecordingDrainer) -> None:
    assert call(server, "POST", "/shutdownpods", pods_body())[1]["workers"] == {}


@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_401_without_the_right_token(
    server: HookServer, drainer: RecordingDrainer, token: str | None
) -> None:
    for path in ("/shutdownpods", "/api/worker/shutdown", "/inspectpods", "/restorepods"):
        status, body = call(server, "POST", path, pods_body("pod-a"), token=token)
        assert status == 401 and "token" in body["error"]
    assert drainer.calls == []


def test_401_with_a_basic_header(server: HookServer) -> None:
    request = urllib.request.Request(
        server.url + "/shutdownpods", pods_body("a"), {"Authorization": f"Basic {TOKEN}"}
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=10)
    assert error.value.code == 401
    assert error.value.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object with field 'shutdown_workers'"),
        (b"{}", "field 'shutdown_workers' is required"),
        (b'{"workers": ["a"]}', "field 'shutdown_workers' is required"),
        (b'{"shutdown_workers": "pod-a"}', "field 'shutdown_workers' must be a list"),
        (b'{"shutdown_workers": [1]}', "field 'shutdown_workers'[0] is not a pod name"),
        (b'{"shutdown_workers": ["ok", "bad name"]}', "field 'shutdown_workers'[1]"),
        (b'{"shutdown_workers": ["*"]}', "field 'shutdown_workers'[0]"),
        (b'{"shutdown_workers": [""]}', "field 'shutdown_workers'[0]"),
        (b"", "JSON object with field 'shutdown_workers'"),
    ],
)
def test_400_names_the_field(
    server: HookServer, drainer: RecordingDrainer, body: bytes, fragment: str
) -> None:
    status, answer = call(server, "POST", "/shutdownpods", body)
    assert status == 400
    assert fragment in answer["error"]
    assert drainer.calls == []


def test_400_on_too_many_pods(server: HookServer) -> None:
    status, answer = call(
        server, "POST", "/inspectpods", pods_body(*(f"p{i}" for i in range(1001)))
    )
    assert status == 400 and "at most 1000" in answer["error"]


def test_healthz_and_readyz_need_no_token(server: HookServer, drainer: RecordingDrainer) -> None:
    assert call(server, "GET", "/healthz", token=None) == (
        200,
        {"status": "ok", "queues": ["default"]},
    )
    assert call(server, "GET", "/readyz", token=None) == (200, {"status": "ok"})
    drainer.broker_up = False
    status, body = call(server, "GET", "/readyz", token=None)
    assert status == 503 and body["error"] == "refused"


def test_404_and_405(server: HookServer) -> None:
    assert call(server, "GET", "/nope")[0] == 404
    assert call(server, "POST", "/nope", pods_body("a"))[0] == 404
    assert call(server, "GET", "/shutdownpods")[0] == 405
    assert call(server, "POST", "/healthz", pods_body("a"))[0] == 405


def test_no_token_configured_means_no_auth(drainer: RecordingDrainer) -> None:
    for server in _serve(drainer, TokenSource()):
        assert call(server, "POST", "/shutdownpods", pods_body("a"), token=None)[0] == 200


def test_token_file_is_reread(drainer: RecordingDrainer, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    for server in _serve(drainer, TokenSource(token_file=token_file)):
        assert call(server, "POST", "/inspectpods", pods_body("a"), token="first")[0] == 200
        token_file.write_text("second")
        assert call(server, "POST", "/inspectpods", pods_body("a"), token="first")[0] == 401
        assert call(server, "POST", "/inspectpods", pods_body("a"), token="second")[0] == 200
        token_file.unlink()  # a Secret being swapped: the last good token stays
        assert call(server, "POST", "/inspectpods", pods_body("a"), token="second")[0] == 200


def test_token_source_refuses_empty(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        TokenSource(token_file=tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        TokenSource(token_file=tmp_path / "missing")
    with pytest.raises(ValueError, match="empty"):
        TokenSource(token="  ")


def test_parse_pods_keeps_order_and_drops_duplicates() -> None:
    assert parse_pods(pods_body("b", "a", "b", "celery@c")) == ["b", "a", "celery@c"]


def test_command_line_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    args = parse_args(["--broker-url", "amqp://x//", "--queues", "a,b", "--queues", "c"])
    assert args.queues == ["a", "b", "c"]
    assert (args.port, args.bind, args.timeout) == (5559, "127.0.0.1", 5.0)
    monkeypatch.setenv("AIRFLOW__CELERY__BROKER_URL", "amqp://airflow//")
    assert parse_args([]).broker_url == "amqp://airflow//"
    assert parse_args([]).queues == ["default"]
    monkeypatch.delenv("AIRFLOW__CELERY__BROKER_URL")
    monkeypatch.delenv("HOOK_BROKER_URL", raising=False)
    with pytest.raises(SystemExit):
        parse_args([])


# --- naming ----------------------------------------------------------------------------------


def test_celery_nodename_convention() -> None:
    assert celery_nodename("airflow-worker-replica-0-1700000000") == (
        "celery@airflow-worker-replica-0-1700000000"
    )
    assert celery_nodename("worker@host") == "worker@host"
    assert pod_name("celery@pod-a") == "pod-a"
    assert valid_pod_name("pod-a.b") and valid_pod_name("celery@pod-a")
    assert not valid_pod_name("a b") and not valid_pod_name("-a") and not valid_pod_name("a@b@c")
    assert not valid_pod_name("x" * 254) and not valid_pod_name(None)


# --- client ----------------------------------------------------------------------------------


def test_client_cordon_inspect_restore(server: HookServer, drainer: RecordingDrainer) -> None:
    client = HookClient(server.url, TOKEN, timeout=10)
    replies = client.cordon(["idle-a", "busy-b", "gone-c"])
    assert replies["idle-a"] == PodReply(True, 0, 0, 1700000000.5, None, 0, ())
    assert replies["idle-a"].to_report() == TaskReport(active=0, reserved=0, at=1700000000.5)
    assert replies["busy-b"].to_report() == TaskReport(active=1, reserved=0, at=1700000000.5)
    assert replies["gone-c"].to_report() is None
    assert replies["gone-c"].error == "no reply from celery@gone-c"
    assert client.inspect(["idle-a"])["idle-a"].cordoned
    restored = client.restore(["idle-a"])["idle-a"]
    assert restored.acknowledged and restored.consuming == ("default",)
    assert restored.to_report() is None
    assert [op for op, _ in drainer.calls] == ["cordon", "inspect", "restore"]
    assert client.healthy()


def test_pod_reply_to_report_rules() -> None:
    good = {"acknowledged": True, "active": 0, "reserved": 2, "at": 5.0, "consuming": []}
    assert PodReply.from_json(good).to_report() == TaskReport(0, 2, 5.0)
    assert PodReply.from_json({**good, "acknowledged": False}).to_report() is None
    assert PodReply.from_json({**good, "error": "still consuming"}).to_report() is None
    assert PodReply.from_json({**good, "consuming": ["default"]}).to_report() is None
    assert (
        PodReply.from_json({k: v for k, v in good.items() if k != "consuming"}).to_report() is None
    )
    assert PodReply.from_json({k: v for k, v in good.items() if k != "at"}).to_report() is None
    assert PodReply.from_json({**good, "active": True}).active is None  # bools are not counts


def test_client_raises_on_401(server: HookServer) -> None:
    with pytest.raises(HookError, match="401") as error:
        HookClient(server.url, "wrong").cordon(["a"])
    assert error.value.status == 401


def test_client_pod_missing_from_answer(drainer: RecordingDrainer, server: HookServer) -> None:
    drainer.cordon = lambda pods: {}  # type: ignore[method-assign]
    reply = HookClient(server.url, TOKEN).cordon(["a"])["a"]
    assert not reply.acknowledged and "missing" in (reply.error or "")


def test_client_raises_on_refused_connection() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HookError):
        HookClient(f"http://127.0.0.1:{port}", TOKEN, timeout=2).cordon(["a"])


def test_client_raises_on_timeout() -> None:
    """A hook that accepts the connection and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        held: list[socket.socket] = []
        accepting = threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True)
        accepting.start()
        started = time.monotonic()
        with pytest.raises(HookError, match=r"no answer within 0\.5 s"):
            HookClient(f"http://127.0.0.1:{port}", TOKEN, timeout=0.5).inspect(["a"])
        assert time.monotonic() - started < 5
        accepting.join(5)
        for conn in held:
            conn.close()


def test_client_raises_on_a_malformed_answer(drainer: RecordingDrainer, server: HookServer) -> None:
    drainer.inspect = lambda pods: None  # type: ignore[method-assign,assignment]
    with pytest.raises(HookError, match="without 'workers'"):
        HookClient(server.url, TOKEN).inspect(["a"])
