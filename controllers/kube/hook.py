"""The drain hook as the autoscaler calls it: cordon, inspect, restore a batch of pods.

The hook service (`controllers.hook`) answers `POST /shutdownpods` (cancel the consumers, then
report), `POST /inspectpods` (report) and `POST /restorepods` (add the consumers back), each with
`{"shutdown_workers": [pods]}` and a reply `{"workers": {pod: {acknowledged, active, reserved,
at, error}}}`, behind a Bearer token. `controllers.hook.client.HookClient` makes the calls,
wrapped so that the autoscaler sees one `HookReply` per pod and one kind of failure.

Every call has a timeout; any failure is a `HookFailure`, and the caller leaves the drain step
as it is so that the next sync retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from controllers.core.types import TaskReport
from controllers.hook.client import HookClient, HookError, PodReply

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


def hook_reply(reply: PodReply, cordon: bool = False) -> HookReply:
    """The shell's view of one pod's answer. A cordon counts only once the worker consumes
    none of the hook's queues; a report only when `PodReply.to_report` trusts it."""
    acknowledged = reply.cordoned if cordon else reply.acknowledged
    return HookReply(acknowledged, reply.to_report(), reply.error, reply.consuming)


class HttpHook:
    """The hook service through `HookClient`; every failure is a `HookFailure`."""

    def __init__(self, client: HookClient) -> None:
        self.client = client

    def _call(self, method: str, pods: Sequence[str]) -> dict[str, HookReply]:
        try:
            replies = getattr(self.client, method)(list(pods))
        except (HookError, OSError) as error:
            raise HookFailure(f"{method}: {error}") from None
        return {pod: hook_reply(reply, method == "cordon") for pod, reply in replies.items()}

    def cordon(self, pods: Sequence[str]) -> dict[str, HookReply]:
        return self._call("cordon", pods)

    def inspect(self, pods: Sequence[str]) -> dict[str, HookReply]:
        return self._call("inspect", pods)

    def restore(self, pods: Sequence[str]) -> dict[str, HookReply]:
        return self._call("restore", pods)


def make_hook(url: str, token: str | None, timeout: float) -> DrainHook:
    return HttpHook(HookClient(base_url(url), token, timeout))
