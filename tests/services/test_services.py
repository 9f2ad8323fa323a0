"""The private servers start, answer, and leave no process behind."""

from __future__ import annotations

import socket
import time
import uuid

import pytest

from harness.services import (
    MissingBinary,
    PostgresServer,
    RabbitMQServer,
    RedisServer,
    find_binary,
    pid_alive,
)


def _gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := [pid for pid in pids if pid_alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def test_redis_answers_and_stops() -> None:
    with RedisServer() as redis:
        assert redis.url == f"redis://127.0.0.1:{redis.port}/0"
        assert redis.ping()
        assert redis.startup_seconds > 0
        with socket.create_connection(("127.0.0.1", redis.port), timeout=2) as sock:
            sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
            reply = b""
            while b"$1\r\nv\r\n" not in reply:
                chunk = sock.recv(64)
                assert chunk, reply
                reply += chunk
        pids = redis.process_tree()
        workdir = redis.workdir
        assert pids
    assert _gone(pids) == []
    assert workdir is not None and not workdir.exists()


def test_rabbitmq_round_trip_and_stops(rabbitmq_server: RabbitMQServer) -> None:
    from kombu import Connection, Exchange, Queue

    assert rabbitmq_server.url == f"amqp://guest:guest@127.0.0.1:{rabbitmq_server.port}//"
    queue = Queue(f"svc-{uuid.uuid4().hex}", Exchange("svc-test", type="direct"), "svc")
    with Connection(rabbitmq_server.url, connect_timeout=5) as conn:
        with conn.Producer() as producer:
            producer.publish({"n": 1}, exchange=queue.exchange, routing_key="svc", declare=[queue])
        with conn.SimpleQueue(queue) as simple:
            message = simple.get(timeout=5)
            message.ack()
    assert message.payload == {"n": 1}
    assert rabbitmq_server.running


def test_rabbitmq_private_node_stops_with_its_epmd() -> None:
    with RabbitMQServer(management=True, consumer_timeout_ms=3_600_000) as rabbit:
        assert "consumer_timeout = 3600000" in rabbit.config_text()
        assert rabbit.nodename.startswith("rabbit-") and rabbit.nodename.endswith("@localhost")
        assert rabbit.management_url == f"http://127.0.0.1:{rabbit.management_port}/"
        assert len({rabbit.port, rabbit.dist_port, rabbit.epmd_port, rabbit.management_port}) == 4
        assert set(name.rsplit("-", 1)[0] for name in rabbit.pids()) == {"epmd", "rabbitmq-server"}
        pids = rabbit.process_tree()
        assert len(pids) >= 3  # epmd, the start script, beam.smp (and Erlang's helpers)
    assert _gone(pids) == []


def test_postgres_select_one_and_stops(postgres_server: PostgresServer) -> None:
    assert postgres_server.url == (
        f"postgresql://airflow:airflow@127.0.0.1:{postgres_server.port}/airflow"
    )
    assert postgres_server.sqlalchemy_url().startswith("postgresql+psycopg2://")
    assert postgres_server.psql("select 1") == "1"
    assert postgres_server.psql("select current_database()") == "airflow"


def test_postgres_stops_every_backend() -> None:
    with PostgresServer(database="other") as pg:
        assert pg.psql("select 1") == "1"
        pids = pg.process_tree()
        assert len(pids) > 1  # postmaster and its background workers
    assert _gone(pids) == []


def test_failure_during_use_still_stops() -> None:
    server = RedisServer()
    with pytest.raises(RuntimeError, match="boom"), server:
        pids = server.process_tree()
        raise RuntimeError("boom")
    assert _gone(pids) == []
    assert not server.running


def test_missing_binary_names_the_debian_package() -> None:
    with pytest.raises(MissingBinary, match=r"apt-get install -y some-package"):
        find_binary("no-such-binary-ea", "some-package", search_dirs=["/nonexistent"])


def test_session_fixtures_report_startup(
    redis_server: RedisServer, rabbitmq_server: RabbitMQServer, postgres_server: PostgresServer
) -> None:
    for server in (redis_server, rabbitmq_server, postgres_server):
        assert 0 < server.startup_seconds < server.startup_timeout
    assert redis_server.ping()
