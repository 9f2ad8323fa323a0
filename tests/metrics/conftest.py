"""Fixtures for the metrics tests (the private servers come from `harness.testing`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis as redis_lib

from harness.services import RedisServer, free_port


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis_lib.Redis]:
    """A client of the session's private Redis, flushed before each test."""
    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushdb()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def port() -> int:
    return free_port()
