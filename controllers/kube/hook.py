"""The drain hook as the autoscaler calls it: cordon, inspect, restore a batch of pods.

The hook service (`controllers.hook`) answers `POST /shutdownpods` (cancel the consumers, then
report), `POST /inspectpods` (report) and `POST /restorepods` (add the consumers back), each with
`{"shutdown_workers": [pods]}` and a reply `{"workers": {pod: {acknowledged, active, reserved,
at, error}}}`, behind a Bearer token. `controllers.hook.client.HookClient` is used when it is
installed; `_HttpHook` speaks the same contract with the standard library otherwise.

Every call has a timeout; any failure is a `HookFailure`, and the caller leaves the drain step
as it is so that the next sync retries.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from controllers.core.types import TaskReport
from controllers.kube.views import parse_time

ENDPOINTS = {"cordon": "shutdownpods", "inspect": "inspectpods", "restore": "restorepods"}
# Paths that name an endpoint rather than the service: the prototype's and ours.
_KNOWN_PATHS = ("/api/worker/shutdown", *(f"/{p}" for p in ENDPOINTS.values()))


class HookFailure(Exception):
    """The hook could not be reached, timed out, or answered with an error."""


@dataclass(frozen=True)
class HookReply:
    """One pod's answer."""

    acknowledged: bool
    report: TaskReport | None
    error: str | None = None
    consuming: tuple[str, ...] | None = None  # the hook's queues the worker consumes, if said

    @property
    def ok(self) -> bool:
        return self.acknowledged and not self.error

    @property
    def consuming_again(self) -> bool:
        """The worker answered and consumes again: its cordon no longer holds (e.g. it was
        restarted after the cordon)."""
        return self.ok and bool(self.consuming)


class DrainHook(Protocol):
    def cordon(self, pods: Sequence[str]) -> dict[str, HookReply]: ...
    def inspect(self, pods: Sequence[str]) -> dict[str, HookReply]: ...
    def restore(self, pods: Sequence[str]) -> dict[str, HookReply]: ...


def base_url(url: str) -> str:
    """The service URL from a configured hook URL that may name an endpoint."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    for known in _KNOWN_PATHS:
        if path.endswith(known):
            path = path[: -len(known)]
            break
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def reply_from_dict(data: Mapping[str, Any]) -> HookReply:
    """A pod's reply from the wire form; counts missing or malformed give no report."""
    error = data.get("error")
    active, reserved = data.get("active"), data.get("reserved")
    at = parse_time(data.get("at"))
    raw_consuming = data.get("consuming")
    consuming = tuple(str(q) for q in raw_consuming) if isinstance(raw_consuming, list) else None
    report = None
    if (
        at is not None
        and isinstance(active, int)
        and isinstance(reserved, int)
        and not isinstance(active, bool)
        and not isinstance(reserved, bool)
        and not error
        and not consuming
    ):
        report = TaskReport(active=active, reserved=reserved, at=at)
    return HookReply(
        bool(data.get("acknowledged")), report, str(error) if error else None, consuming
    )


class _HttpHook:
    """The contract over urllib, for when `controllers.hook.client` is not installed."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        self.base = base_url(url)
        self.token = token
        self.timeout = timeout

    def _call(self, endpoint: str, pods: Sequence[str]) -> dict[str, HookReply]:
        body = json.dumps({"shutdown_workers": list(pods)}).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            f"{self.base}/{endpoint}", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise HookFailure(f"{endpoint}: HTTP {error.code}") from None
        except (OSError, ValueError) as error:
            raise HookFailure(f"{endpoint}: {error}") from None
        workers = data.get("workers") if isinstance(data, dict) else None
        if not isinstance(workers, dict):
            raise HookFailure(f"{endpoint}: reply has no 'workers' object")
        return {
            pod: reply_from_dict(workers[pod]) for pod in pods if isinstance(workers.get(pod), dict)
        }

    def cordon(self, pods: Sequence[str]) -> dict[str, HookReply]:
        return self._call(ENDPOINTS["cordon"], pods)

    def inspect(self, pods: Sequence[str]) -> dict[str, HookReply]:
        return self._call(ENDPOINTS["inspect"], pods)

    def restore(self, pods: Sequence[str]) -> dict[str, HookReply]:
        return self._call(ENDPOINTS["restore"], pods)


class _ClientHook:
    """`controllers.hook.client.HookClient`, its replies turned into `HookReply`."""

    def __init__(self, client: Any, error_type: type[BaseException]) -> None:
        self.client = client
        self.error_type = error_type

    def _call(self, method: str, pods: Sequence[str]) -> dict[str, HookReply]:
        try:
            replies = getattr(self.client, method)(list(pods))
        except self.error_type as error:
            raise HookFailure(f"{method}: {error}") from None
        except OSError as error:
            raise HookFailure(f"{method}: {error}") from None
        out: dict[str, HookReply] = {}
        for pod, reply in (replies or {}).items():
            error = getattr(reply, "error", None)
            acknowledged = bool(getattr(reply, "acknowledged", False))
            consuming = getattr(reply, "consuming", None)
            if method == "cordon":
                # A cordon counts only once the worker consumes none of the hook's queues.
                acknowledged = bool(getattr(reply, "cordoned", acknowledged))
            out[pod] = HookReply(
                acknowledged,
                None if error else reply.to_report(),
                str(error) if error else None,
                tuple(consuming) if consuming is not None else None,
            )
        return out

    def cordon(self, pods: Sequence[str]) -> dict[str, HookReply]:
        return self._call("cordon", pods)

    def inspect(self, pods: Sequence[str]) -> dict[str, HookReply]:
        return self._call("inspect", pods)

    def restore(self, pods: Sequence[str]) -> dict[str, HookReply]:
        return self._call("restore", pods)


def make_hook(url: str, token: str | None, timeout: float) -> DrainHook:
    try:
        from controllers.hook.client import HookClient, HookError
    except ImportError:
        return _HttpHook(url, token, timeout)
    return _ClientHook(HookClient(base_url(url), token, timeout), HookError)
