"""A small client of Airflow 3's REST API (`/api/v2`), with timeouts on every call.

Only the standard library: it runs in the project's environment, not Airflow's venv.

Auth (SimpleAuthManager): `POST /auth/token` with `{"username", "password"}` answers 201
`{"access_token": JWT}`; every `/api/v2` call sends `Authorization: Bearer JWT`. The
token expires (`[api_auth] jwt_expiration_time`, 24 h by default); on a 401 the client
logs in again once. `/api/v2/monitor/health` needs no token.

Airflow 3 API notes: triggering a run is `POST /api/v2/dags/{dag_id}/dagRuns` whose
body must carry `logical_date` (null is accepted: a run with no logical date, as a
manual trigger in the UI makes); `dag_run_id` is optional. `~` stands for "any" in
list paths (`/api/v2/dags/~/dagRuns/~/taskInstances`). Lists are paged with
`limit`/`offset` (the server caps `limit` at `[api] maximum_page_limit`, 100).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from typing import Any

#: DAG run states after which nothing changes any more.
FINISHED_RUN_STATES = frozenset({"success", "failed"})
#: Task instance states after which nothing changes any more (without a retry or a clear).
FINISHED_TASK_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
_PAGE = 100


class AirflowAPIError(RuntimeError):
    """An HTTP error from the API; `.status` and `.body` keep what the server said."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        self.method, self.url, self.status, self.body = method, url, status, body
        super().__init__(f"{method} {url}: HTTP {status}: {body[:2000]}")


class AirflowAPI:
    """`AirflowAPI("http://127.0.0.1:PORT", "admin", "admin")`."""

    def __init__(
        self,
        base_url: str,
        username: str = "admin",
        password: str = "admin",
        *,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self._token: str | None = None

    # -- plumbing --------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
    ) -> Any:
        url = self.base_url + path
        if params:
            query = {k: v for k, v in params.items() if v is not None}
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            raise AirflowAPIError(method, url, error.code, text) from None
        return json.loads(payload) if payload else None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """An authenticated call; logs in again once when the token was refused."""
        try:
            return self._send(method, path, body=body, params=params)
        except AirflowAPIError as error:
            if error.status != 401:
                raise
            self._token = None
            return self._send(method, path, body=body, params=params)

    def _paged(self, path: str, key: str, params: dict[str, Any] | None = None) -> Iterator[dict]:
        offset = 0
        while True:
            page = self.request(
                "GET", path, params={**(params or {}), "limit": _PAGE, "offset": offset}
            )
            items = page.get(key) or []
            yield from items
            offset += len(items)
            if not items or offset >= page.get("total_entries", 0):
                return

    # -- auth and health -------------------------------------------------------------------------

    def token(self) -> str:
        """A JWT for the API, from `POST /auth/token` (cached)."""
        if self._token is None:
            answer = self._send(
                "POST",
                "/auth/token",
                body={"username": self.username, "password": self.password},
                auth=False,
            )
            self._token = answer["access_token"]
        return self._token

    def health(self) -> dict:
        return self._send("GET", "/api/v2/monitor/health", auth=False)

    def version(self) -> dict:
        return self.request("GET", "/api/v2/version")

    # -- DAGs ------------------------------------------------------------------------------------

    def list_dags(self) -> list[dict]:
        return list(self._paged("/api/v2/dags", "dags"))

    def get_dag(self, dag_id: str) -> dict:
        return self.request("GET", f"/api/v2/dags/{_q(dag_id)}")

    def import_errors(self) -> list[dict]:
        return list(self._paged("/api/v2/importErrors", "import_errors"))

    def wait_for_dags(
        self, dag_ids: Iterable[str], *, timeout: float = 120.0, poll: float = 1.0
    ) -> dict[str, dict]:
        """Until every DAG is parsed (known to the API); an import error fails at once."""
        wanted = set(dag_ids)
        deadline = time.monotonic() + timeout
        while True:
            found = {d["dag_id"]: d for d in self.list_dags() if d["dag_id"] in wanted}
            if len(found) == len(wanted):
                return found
            errors = self.import_errors()
            if errors:
                details = "\n".join(f"{e.get('filename')}: {e.get('stack_trace')}" for e in errors)
                raise AirflowAPIError("GET", "/api/v2/importErrors", 200, details)
            if time.monotonic() >= deadline:
                missing = ", ".join(sorted(wanted - set(found)))
                raise TimeoutError(f"DAGs not parsed within {timeout:.0f} s: {missing}")
            time.sleep(poll)

    def wait_for_dag(self, dag_id: str, *, timeout: float = 120.0, poll: float = 1.0) -> dict:
        return self.wait_for_dags([dag_id], timeout=timeout, poll=poll)[dag_id]

    def set_paused(self, dag_id: str, paused: bool) -> dict:
        return self.request("PATCH", f"/api/v2/dags/{_q(dag_id)}", body={"is_paused": paused})

    def unpause(self, dag_id: str) -> dict:
        return self.set_paused(dag_id, False)

    # -- runs ------------------------------------------------------------------------------------

    def trigger(
        self,
        dag_id: str,
        *,
        run_id: str | None = None,
        conf: dict | None = None,
        logical_date: str | None = None,
        note: str | None = None,
    ) -> dict:
        """Trigger a run; `logical_date` null (the default) is a run with no logical date."""
        body: dict[str, Any] = {"logical_date": logical_date, "conf": conf or {}}
        if run_id is not None:
            body["dag_run_id"] = run_id
        if note is not None:
            body["note"] = note
        return self.request("POST", f"/api/v2/dags/{_q(dag_id)}/dagRuns", body=body)

    def get_run(self, dag_id: str, run_id: str) -> dict:
        return self.request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")

    def list_runs(self, dag_id: str = "~", **params: Any) -> list[dict]:
        return list(self._paged(f"/api/v2/dags/{_q(dag_id)}/dagRuns", "dag_runs", params))

    def task_instances(self, dag_id: str = "~", run_id: str = "~", **params: Any) -> list[dict]:
        """Task instances with `task_id`, `state`, `try_number`, `hostname`, times."""
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances"
        return list(self._paged(path, "task_instances", params))

    def wait_for_runs(
        self,
        runs: Iterable[tuple[str, str]],
        *,
        timeout: float = 600.0,
        poll: float = 1.0,
    ) -> dict[tuple[str, str], str]:
        """Until every `(dag_id, run_id)` has finished; return the final state of each."""
        pending = set(runs)
        states: dict[tuple[str, str], str] = {}
        deadline = time.monotonic() + timeout
        while pending:
            for key in sorted(pending):
                state = self.get_run(*key)["state"]
                if state in FINISHED_RUN_STATES:
                    states[key] = state
                    pending.discard(key)
            if not pending:
                break
            if time.monotonic() >= deadline:
                left = ", ".join(f"{d}/{r}" for d, r in sorted(pending))
                raise TimeoutError(f"runs not finished within {timeout:.0f} s: {left}")
            time.sleep(poll)
        return states


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="~")
