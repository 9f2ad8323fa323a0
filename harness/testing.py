"""pytest plugin: session-scoped private RabbitMQ, Redis and PostgreSQL servers.

Registered by the top-level `tests/conftest.py` (`pytest_plugins = ["harness.testing"]`).
Under pytest-xdist each worker process starts its own servers on its own free
ports. A missing binary fails the test (with the Debian package to install);
it never skips. Tests that use these fixtures get the `services` marker, so
`-m "not services"` deselects them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import pytest

from harness.services import (
    MissingBinary,
    PostgresServer,
    PrivateServer,
    RabbitMQServer,
    RedisServer,
)

S = TypeVar("S", bound=PrivateServer)

SERVICE_FIXTURES = frozenset({"redis_server", "rabbitmq_server", "postgres_server"})


def _serve(server: S) -> Iterator[S]:
    try:
        server.start()
    except MissingBinary as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server; `.url` is `redis://127.0.0.1:PORT/0`."""
    yield from _serve(RedisServer())


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[RabbitMQServer]:
    """A private RabbitMQ node (with its own epmd); `.url` is `amqp://guest:guest@...//`."""
    yield from _serve(RabbitMQServer())


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster with database `airflow`; `.url` is `postgresql://...`."""
    yield from _serve(PostgresServer())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)
