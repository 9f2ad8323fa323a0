"""Helpers for the metrics tests: subprocesses stopped by pid, polling, HTTP."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from harness.services import ManagedProcess, spawn

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_module(name: str, module: str, args: Sequence[str], log_dir: Path) -> ManagedProcess:
    """`python -m module args...` in its own session, output in `log_dir/name.log`."""
    return spawn(
        name,
        [sys.executable, "-m", module, *args],
        log_path=log_dir / f"{name}.log",
        env=python_env(),
        cwd=ROOT,
    )


def wait_for(
    probe: Callable[[], T | None],
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
    process: ManagedProcess | None = None,
) -> T:
    """Poll `probe` until it returns something truthy; fail with the process log otherwise."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        if process is not None and not process.alive:
            pytest.fail(f"{process.name} exited while waiting for {what}:\n{process.log_tail()}")
        time.sleep(interval)
    tail = f"\n{process.name} log:\n{process.log_tail()}" if process is not None else ""
    pytest.fail(f"timed out after {timeout} s waiting for {what} (last: {last!r}){tail}")


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def http_json(url: str) -> tuple[int, Any]:
    status, body = http_get(url)
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, body


def prometheus_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """A tiny parser of the exposition format: (name, labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
    return out
