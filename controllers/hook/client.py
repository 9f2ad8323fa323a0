"""The autoscaler's side of the drain hook (stdlib only, no Celery).

    client = HookClient("http://hook:5559", token, timeout=30)
    replies = client.cordon(["pod-a", "pod-b"])
    report = replies["pod-a"].to_report()   # TaskReport, or None: not safely cordoned

`HookError` means the hook itself failed (unreachable, timeout, non-200,
malformed answer); a pod the hook could not reach is a `PodReply` with
`acknowledged=False` and an `error`, never an exception.

`timeout` covers the whole HTTP exchange: give it more than the hook's own
worst case, about two of its `--timeout` (5 s) plus one per extra queue.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controllers.core.types import TaskReport

CORDON_PATH = "/shutdownpods"
INSPECT_PATH = "/inspectpods"
RESTORE_PATH = "/restorepods"


class HookError(RuntimeError):
    """The hook did not answer properly (timeout, connection error, non-200, bad JSON)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PodReply:
    """The hook's answer for one pod."""

    acknowledged: bool
    active: int | None = None
    reserved: int | None = None  # prefetched + scheduled (ETA) tasks held by the worker
    at: float | None = None  # unix time the worker's report was complete
    error: str | None = None
    scheduled: int | None = None
    consuming: tuple[str, ...] | None = None  # the hook's queues the worker still consumes

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PodReply:
        if not isinstance(data, Mapping):
            raise HookError(f"a pod's answer is not an object: {data!r}")
        consuming = data.get("consuming")
        return cls(
            acknowledged=bool(data.get("acknowledged", False)),
            active=_int_or_none(data.get("active")),
            reserved=_int_or_none(data.get("reserved")),
            at=float(data["at"]) if isinstance(data.get("at"), int | float) else None,
            error=str(data["error"]) if data.get("error") is not None else None,
            scheduled=_int_or_none(data.get("scheduled")),
            consuming=tuple(str(q) for q in consuming) if isinstance(consuming, list) else None,
        )

    @property
    def cordoned(self) -> bool:
        """Acknowledged, no error, and consuming none of the hook's queues."""
        return self.acknowledged and self.error is None and self.consuming == ()

    def to_report(self) -> TaskReport | None:
        """The worker's tasks report, only when it can be trusted for the drain protocol.

        None unless the worker acknowledged, answered every question (no error),
        and consumes none of the hook's queues: a worker consuming again (say,
        restarted after the cordon) may take a task at any moment, so no report
        of it may ever let its pod be marked.
        """
        if not self.cordoned or self.active is None or self.reserved is None or self.at is None:
            return None
        return TaskReport(active=self.active, reserved=self.reserved, at=self.at)


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


class HookClient:
    """Calls the hook at `url` (e.g. `http://elastic-hook:5559`) with a bearer `token`."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def cordon(self, pods: Sequence[str]) -> dict[str, PodReply]:
        """Cancel the pods' consumers, then their tasks report (after the acknowledgement)."""
        return self._pods(CORDON_PATH, pods)

    def inspect(self, pods: Sequence[str]) -> dict[str, PodReply]:
        """The pods' tasks report again, without cancelling."""
        return self._pods(INSPECT_PATH, pods)

    def restore(self, pods: Sequence[str]) -> dict[str, PodReply]:
        """Undo a cordon (`add_consumer`); `acknowledged` and `consuming` per pod."""
        return self._pods(RESTORE_PATH, pods)

    def healthy(self) -> bool:
        try:
            return self._request("GET", "/healthz", None).get("status") == "ok"
        except HookError:
            return False

    def _pods(self, path: str, pods: Sequence[str]) -> dict[str, PodReply]:
        pods = list(pods)
        payload = self._request("POST", path, {"shutdown_workers": pods})
        workers = payload.get("workers")
        if not isinstance(workers, Mapping):
            raise HookError(f"{path}: answer without 'workers': {payload!r}")
        replies = {}
        for pod in pods:
            answer = workers.get(pod)
            if answer is None:
                replies[pod] = PodReply(False, error="missing from the hook's answer")
            else:
                replies[pod] = PodReply.from_json(answer)
        return replies

    def _request(self, method: str, path: str, body: Any) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            detail = error.read()[:500].decode(errors="replace")
            raise HookError(f"{method} {path}: HTTP {error.code}: {detail}", error.code) from None
        except TimeoutError as error:
            raise HookError(f"{method} {path}: no answer within {self.timeout} s") from error
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            if isinstance(reason, TimeoutError):
                raise HookError(f"{method} {path}: no answer within {self.timeout} s") from error
            raise HookError(f"{method} {path}: {reason}") from error
        if status != 200:
            raise HookError(f"{method} {path}: HTTP {status}", status)
        try:
            payload = json.loads(raw)
        except ValueError as error:
            raise HookError(f"{method} {path}: answer is not JSON: {raw[:200]!r}") from error
        if not isinstance(payload, dict):
            raise HookError(f"{method} {path}: answer is not an object: {payload!r}")
        return payload
