"""A real Airflow 3 (CeleryExecutor) stack as private processes.

Airflow is installed into its own virtualenv, never into the project's environment:
its dependency set (pinned in `airflow-requirements.txt`, our stand-in for Airflow's
constraints file, which lives on GitHub) must not fight the project's own pins. The
venv is cached per requirements hash and Python version:

    python -m harness.e2e.airflow install [--venv DIR]      # create or reuse, print the path
    python -m harness.e2e.airflow up --database-url URL --broker-url URL --dags DIR

`AirflowStack` runs `airflow db migrate`, then `api-server`, `scheduler`, `dag-processor` and
(optionally) `celery flower`, each in its own session with its log in the work directory,
waits until `/api/v2/monitor/health` reports them healthy, and stops them by pid (process
group) on exit, on exceptions and on Ctrl-C alike. Workers are not part of the stack: the
caller runs `worker_command(pod)` with `worker_env(pod)` (or `start_worker(pod)` here).

Auth: the SimpleAuthManager with one user `admin`/`admin` (passwords file written by us);
`POST /auth/token` with `{"username": "admin", "password": "admin"}` gives the bearer token
for `/api/v2` (see `harness.e2e.airflow_api`). Flower uses basic auth `admin:admin`.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from harness.managed import Managed
from harness.services import LOOPBACK, ManagedProcess, free_ports, http_ok, spawn

REQUIREMENTS_FILE = Path(__file__).resolve().with_name("airflow-requirements.txt")
#: Use this directory as the Airflow venv (created there if missing).
VENV_ENV = "ELASTIC_AIRFLOW_VENV"
_COMPLETE_MARKER = ".elastic-airflow-complete"
_TAIL_BYTES = 6000

ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"
#: Fixed secrets: every component and every worker of one stack must share them. Tests only.
#: (64 bytes at least: PyJWT warns about shorter HS512 keys.)
JWT_SECRET = "elastic-airflow-e2e-jwt-secret-not-for-production-0123456789abcdef"
API_SECRET_KEY = "elastic-airflow-e2e-api-secret-key"
# A Fernet key is 32 url-safe base64 bytes; fixed so variables/connections stay readable.
FERNET_KEY = "ZWxhc3RpYy1haXJmbG93LWUyZS1mZXJuZXQta2V5ISE="
SIMPLE_AUTH_MANAGER = (
    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
)
DEFAULT_QUEUE = "default"
#: Set in each worker's environment (and so in its tasks') to the pod name it stands for.
POD_ENV = "ELASTIC_AIRFLOW_POD"
# Variables of the caller's environment that must not leak into Airflow's interpreter.
_SCRUBBED_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH")


class AirflowUnavailable(RuntimeError):
    """The Airflow venv cannot be made (no network, a broken pin); tests must fail on this."""


class AirflowStackError(RuntimeError):
    """A component did not start, became unhealthy or died; the message carries log tails."""


# --- the virtualenv ---------------------------------------------------------------------------


def requirements_hash(requirements: Path = REQUIREMENTS_FILE) -> str:
    """12 hex digits naming one pins file on one Python minor version."""
    digest = hashlib.sha256(requirements.read_bytes())
    digest.update(f"python{sys.version_info.major}.{sys.version_info.minor}".encode())
    return digest.hexdigest()[:12]


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "elastic-airflow"


def default_venv_dir() -> Path:
    override = os.environ.get(VENV_ENV)
    if override:
        return Path(override)
    return cache_root() / f"airflow-venv-{requirements_hash()}"


def pinned_version(package: str, requirements: Path = REQUIREMENTS_FILE) -> str:
    """The `==` pin of `package` in the requirements file."""
    pattern = re.compile(rf"^{re.escape(package)}==(\S+)\s*(?:#.*)?$", re.I | re.M)
    match = pattern.search(requirements.read_text())
    if match is None:
        raise AirflowUnavailable(f"{package} is not pinned in {requirements}")
    return match.group(1)


@dataclass(frozen=True)
class InstallResult:
    venv: Path
    created: bool
    seconds: float
    airflow_version: str


def _complete(venv: Path) -> bool:
    return (venv / _COMPLETE_MARKER).is_file() and (venv / "bin" / "airflow").is_file()


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _progress(message: str) -> None:
    print(f"[airflow] {message}", file=sys.stderr, flush=True)


def _tail(path: Path, limit: int = _TAIL_BYTES) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - limit))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _run_logged(
    argv: list[str], log: Path, *, env: Mapping[str, str] | None, timeout: float
) -> None:
    with log.open("ab") as handle:
        handle.write(f"\n$ {' '.join(argv)}\n".encode())
        handle.flush()
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise AirflowUnavailable(
                f"`{' '.join(argv)}` took more than {timeout:.0f} s; log {log}:\n{_tail(log)}"
            ) from None
    if result.returncode != 0:
        raise AirflowUnavailable(
            f"`{' '.join(argv)}` failed ({result.returncode}); log {log}:\n{_tail(log)}"
        )


def install(
    venv: str | Path | None = None,
    *,
    python: str | None = None,
    requirements: Path = REQUIREMENTS_FILE,
    timeout: float = 1800.0,
    progress=_progress,
) -> InstallResult:
    """Create the Airflow venv (or reuse a complete one) with the pinned requirements.

    Safe to run from several processes at once (a file lock serialises them). A venv
    whose installation did not finish lacks the marker file and is made again.
    """
    venv = Path(venv) if venv is not None else default_venv_dir()
    expected = pinned_version("apache-airflow", requirements)
    if _complete(venv):
        return InstallResult(venv, False, 0.0, expected)
    started = time.monotonic()
    with _lock(venv.parent / f".{venv.name}.lock"):
        if _complete(venv):
            return InstallResult(venv, False, 0.0, expected)
        if venv.exists():
            shutil.rmtree(venv)
        log = venv.parent / f"{venv.name}.install.log"
        log.write_text("")
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        interpreter = python or sys.executable
        progress(f"creating {venv} with {interpreter} (log: {log})")
        _run_logged([interpreter, "-m", "venv", str(venv)], log, env=env, timeout=300)
        progress(f"installing apache-airflow=={expected} from {requirements.name}")
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input"]
        _run_logged([*pip, "-r", str(requirements)], log, env=env, timeout=timeout)
        version = airflow_version(venv)
        if version != expected:
            raise AirflowUnavailable(f"{venv}: airflow reports {version}, pinned {expected}")
        seconds = time.monotonic() - started
        (venv / _COMPLETE_MARKER).write_text(
            json.dumps({"requirements_hash": requirements_hash(requirements), "seconds": seconds})
        )
        progress(f"installed Airflow {version} in {seconds:.0f} s")
        return InstallResult(venv, True, seconds, version)


def airflow_version(venv: Path) -> str:
    result = subprocess.run(
        [str(venv / "bin" / "airflow"), "version"],
        capture_output=True,
        text=True,
        env=_clean_env(venv),
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AirflowUnavailable(f"`airflow version` failed in {venv}:\n{result.stderr[-2000:]}")
    return result.stdout.strip().splitlines()[-1]


def airflow_venv() -> Path:
    """The Airflow venv, created first if needed."""
    return install().venv


def _clean_env(venv: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _SCRUBBED_ENV and not k.startswith("AIRFLOW")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
    return env


# --- URLs -------------------------------------------------------------------------------------


def sql_alchemy_conn(database_url: str) -> str:
    """Airflow's metadata connection for a PostgreSQL URL (psycopg2 driver)."""
    url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg2://", database_url)
    if not url.startswith("postgresql+psycopg2://"):
        raise ValueError(f"not a PostgreSQL URL: {database_url!r}")
    return url


def celery_result_backend(database_url: str) -> str:
    """Celery's database result backend on the same PostgreSQL (`db+postgresql+psycopg2://`)."""
    return "db+" + sql_alchemy_conn(database_url)


# --- the stack --------------------------------------------------------------------------------


def _session_rss(sessions: set[int]) -> dict[int, int]:
    """Resident memory in bytes of every live process, summed per session id."""
    totals = dict.fromkeys(sessions, 0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rfind(")") + 2 :].split()
            session = int(fields[3])
            if session not in totals or fields[0] == "Z":
                continue
            rss_pages = int((entry / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        totals[session] += rss_pages * os.sysconf("SC_PAGE_SIZE")
    return totals


class AirflowStack(Managed):
    """Airflow's api-server, scheduler, dag-processor and flower on private ports.

    `database_url`: the PostgreSQL metadata database (migrated here). `broker_url`: the
    RabbitMQ broker. `result_backend`: Celery's, by default the metadata database
    (`db+postgresql+psycopg2://`). `extra_env`: added to every component and worker
    (e.g. `ELASTIC_AIRFLOW_OUTPUT`).
    """

    def __init__(
        self,
        *,
        database_url: str,
        broker_url: str,
        dags_folder: str | Path,
        work_dir: str | Path | None = None,
        result_backend: str | None = None,
        venv: str | Path | None = None,
        flower: bool = True,
        worker_concurrency: int = 2,
        prefetch_multiplier: int = 1,
        acks_late: bool = True,
        queue: str = DEFAULT_QUEUE,
        extra_env: Mapping[str, str] | None = None,
        startup_timeout: float = 240.0,
        stop_timeout: float = 20.0,
    ) -> None:
        self.database_url = sql_alchemy_conn(database_url)
        self.broker_url = broker_url
        self.result_backend = result_backend or celery_result_backend(database_url)
        self.dags_folder = Path(dags_folder).resolve()
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="ea-airflow-")).resolve()
        self.venv = Path(venv) if venv is not None else None
        self.flower = flower
        self.worker_concurrency = worker_concurrency
        self.prefetch_multiplier = prefetch_multiplier
        self.acks_late = acks_late
        self.queue = queue
        self.extra_env = dict(extra_env or {})
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.api_port = self.flower_port = self.log_server_port = self.trigger_log_port = 0
        self.migrate_seconds = self.startup_seconds = 0.0
        self._components: list[ManagedProcess] = []
        self._workers: dict[str, ManagedProcess] = {}

    # -- paths and URLs --------------------------------------------------------------------------

    @property
    def airflow_home(self) -> Path:
        return self.work_dir / "airflow-home"

    @property
    def logs_dir(self) -> Path:
        return self.work_dir / "logs"

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"

    @property
    def flower_url(self) -> str | None:
        return f"http://{LOOPBACK}:{self.flower_port}" if self.flower else None

    @property
    def flower_basic_auth(self) -> tuple[str, str]:
        return ADMIN_USER, ADMIN_PASSWORD

    @property
    def airflow_bin(self) -> str:
        assert self.venv is not None, "start the stack first"
        return str(self.venv / "bin" / "airflow")

    # -- environment -----------------------------------------------------------------------------

    def airflow_config(self) -> dict[str, str]:
        """The `AIRFLOW__*` settings that every component and every worker shares."""
        home = self.airflow_home
        return {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__FERNET_KEY": FERNET_KEY,
            # Queued work must reach the broker: the autoscaler measures it there.
            "AIRFLOW__CORE__PARALLELISM": "512",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "512",
            "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "512",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "0",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
            "AIRFLOW__API__HOST": LOOPBACK,
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": API_SECRET_KEY,
            "AIRFLOW__API__EXPOSE_CONFIG": "True",
            "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
            "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": self.result_backend,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": str(self.prefetch_multiplier),
            "AIRFLOW__CELERY__TASK_ACKS_LATE": str(self.acks_late),
            "AIRFLOW__CELERY__WORKER_ENABLE_REMOTE_CONTROL": "True",
            "AIRFLOW__CELERY__FLOWER_HOST": LOOPBACK,
            "AIRFLOW__CELERY__FLOWER_PORT": str(self.flower_port),
            "AIRFLOW__CELERY__FLOWER_BASIC_AUTH": f"{ADMIN_USER}:{ADMIN_PASSWORD}",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
            # Private ports instead of the fixed 8793/8794, so stacks can run side by side.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_server_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
            # Fast loops for tests.
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            # A task waiting for a worker must stay queued, not be failed after 10 minutes.
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "86400",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__STALE_DAG_THRESHOLD": "30",
        }

    def environment(self) -> dict[str, str]:
        """The full process environment of a component: the caller's, cleaned, plus Airflow's."""
        assert self.venv is not None, "start the stack first"
        env = _clean_env(self.venv)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.airflow_config())
        env.update(self.extra_env)
        return env

    def worker_env(self, pod_name: str | None = None) -> dict[str, str]:
        """The environment of a Celery worker (the same Airflow settings as the stack)."""
        env = self.environment()
        if pod_name is not None:
            env[POD_ENV] = pod_name
        return env

    def worker_command(self, pod_name: str) -> list[str]:
        """The Celery worker of one pod: node name `celery@<pod_name>`, our queue and slots.

        `--skip-serve-logs`: task logs are files under the shared AIRFLOW_HOME, which the
        api-server reads itself; a log server per worker would need a port each.
        """
        return [
            self.airflow_bin,
            "celery",
            "worker",
            "--celery-hostname",
            pod_name,
            "--queues",
            self.queue,
            "--concurrency",
            str(self.worker_concurrency),
            "--skip-serve-logs",
        ]

    @staticmethod
    def celery_nodename(pod_name: str) -> str:
        """The Celery node name a worker started by `worker_command(pod_name)` reports."""
        return pod_name if "@" in pod_name else f"celery@{pod_name}"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Migrate the database, start the components, wait until healthy; clean up on failure."""
        if self._components:
            raise AirflowStackError("stack already started")
        if self.venv is None:
            self.venv = airflow_venv()
        elif not _complete(self.venv):
            self.venv = install(self.venv).venv
        if not self.dags_folder.is_dir():
            raise AirflowStackError(f"DAGs folder {self.dags_folder} does not exist")
        started = time.monotonic()
        atexit.register(self.stop)
        try:
            self._prepare()
            self._migrate()
            self._start_components()
            self.wait_healthy(started + self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _prepare(self) -> None:
        for directory in (self.work_dir, self.airflow_home, self.logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        ports = free_ports(4)
        self.api_port, self.flower_port, self.log_server_port, self.trigger_log_port = ports
        (self.airflow_home / "passwords.json").write_text(
            json.dumps({ADMIN_USER: ADMIN_PASSWORD}) + "\n"
        )

    def _migrate(self) -> None:
        started = time.monotonic()
        log = self.logs_dir / "db-migrate.log"
        try:
            _run_logged(
                [self.airflow_bin, "db", "migrate"], log, env=self.environment(), timeout=600
            )
        except AirflowUnavailable as error:
            raise AirflowStackError(str(error)) from None
        self.migrate_seconds = time.monotonic() - started

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> ManagedProcess:
        return spawn(name, argv, log_path=self.logs_dir / f"{name}.log", env=env, cwd=self.work_dir)

    def _start_components(self) -> None:
        env = self.environment()
        airflow = self.airflow_bin
        commands = {
            "api-server": [
                airflow, "api-server", "--host", LOOPBACK, "--port", str(self.api_port),
                "--workers", "1",
            ],
            "scheduler": [airflow, "scheduler", "--skip-serve-logs"],
            "dag-processor": [airflow, "dag-processor"],
        }  # fmt: skip
        if self.flower:
            commands["flower"] = [
                airflow, "celery", "flower", "--hostname", LOOPBACK,
                "--port", str(self.flower_port),
                "--basic-auth", f"{ADMIN_USER}:{ADMIN_PASSWORD}",
            ]  # fmt: skip
        for name, argv in commands.items():
            self._components.append(self._spawn(name, argv, env))

    def health(self, timeout: float = 5.0) -> dict:
        """`GET /api/v2/monitor/health` (no auth needed)."""
        with urllib.request.urlopen(f"{self.api_url}/api/v2/monitor/health", timeout=timeout) as r:
            return json.loads(r.read())

    def _healthy(self) -> bool:
        try:
            health = self.health()
        except (OSError, ValueError):
            return False
        wanted = ("metadatabase", "scheduler", "dag_processor")
        if any((health.get(k) or {}).get("status") != "healthy" for k in wanted):
            return False
        return not self.flower or self._flower_ready()

    def _flower_ready(self) -> bool:
        return http_ok(f"{self.flower_url}/healthcheck", self.flower_basic_auth, timeout=3)

    def wait_healthy(self, deadline: float) -> None:
        while True:
            self.check_alive()
            if self._healthy():
                return
            if time.monotonic() >= deadline:
                try:
                    health = json.dumps(self.health())
                except (OSError, ValueError) as error:
                    health = repr(error)
                raise AirflowStackError(
                    f"Airflow not healthy within {self.startup_timeout:.0f} s "
                    f"(health: {health}); logs:\n{self.log_tails()}"
                )
            time.sleep(0.5)

    def check_alive(self) -> None:
        """Raise `AirflowStackError` when a component has exited."""
        for proc in self._components:
            if not proc.alive:
                raise AirflowStackError(
                    f"airflow {proc.name} (pid {proc.pid}) exited with {proc.proc.returncode}; "
                    f"log {proc.log_path}:\n{proc.log_tail(_TAIL_BYTES)}"
                )

    def stop(self) -> None:
        """Stop workers, then the components (last started first), each by its process group."""
        atexit.unregister(self.stop)
        while self._workers:
            _, worker = self._workers.popitem()
            worker.stop(self.stop_timeout)
        while self._components:
            self._components.pop().stop(self.stop_timeout)

    def cleanup(self) -> None:
        """Stop, and remove the work directory when the stack made it."""
        self.stop()
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    # -- workers ---------------------------------------------------------------------------------

    def start_worker(self, pod_name: str) -> ManagedProcess:
        """Run `worker_command(pod_name)` as a private process (stopped with the stack)."""
        if pod_name in self._workers and self._workers[pod_name].alive:
            raise AirflowStackError(f"worker {pod_name} already running")
        worker = self._spawn(
            f"worker-{pod_name}", self.worker_command(pod_name), self.worker_env(pod_name)
        )
        self._workers[pod_name] = worker
        return worker

    def stop_worker(
        self, pod_name: str, *, timeout: float | None = None, sig: int = signal.SIGTERM
    ) -> int | None:
        """Send `sig` (SIGTERM: Celery's warm shutdown) and wait; SIGKILL the group after."""
        worker = self._workers.pop(pod_name)
        worker.stop_signal = sig
        return worker.stop(self.stop_timeout if timeout is None else timeout)

    def wait_worker_ready(self, pod_name: str, timeout: float = 60.0) -> None:
        """Until the worker's log says `celery@<pod> ready.` (it consumes from then on)."""
        worker = self._workers[pod_name]
        marker = f"{self.celery_nodename(pod_name)} ready.".encode()
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), worker.log_path.open("rb") as handle:
                if marker in handle.read():
                    return
            if not worker.alive:
                raise AirflowStackError(
                    f"worker {pod_name} exited with {worker.proc.returncode}:\n{worker.log_tail()}"
                )
            if time.monotonic() >= deadline:
                raise AirflowStackError(
                    f"worker {pod_name} not ready within {timeout:.0f} s:\n{worker.log_tail()}"
                )
            time.sleep(0.2)

    @property
    def workers(self) -> dict[str, ManagedProcess]:
        return dict(self._workers)

    # -- introspection ---------------------------------------------------------------------------

    def pids(self) -> dict[str, int]:
        procs = [*self._components, *self._workers.values()]
        return {p.name: p.pid for p in procs}

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory per component and worker, all its processes summed."""
        procs = [*self._components, *self._workers.values()]
        by_session = _session_rss({p.pid for p in procs})
        return {p.name: by_session[p.pid] for p in procs}

    def log_tails(self, limit: int = 3000) -> str:
        procs = [*self._components, *self._workers.values()]
        return "\n".join(f"--- {p.name} ({p.log_path}) ---\n{p.log_tail(limit)}" for p in procs)

    def api(self, timeout: float = 30.0):
        """A REST client logged in as the admin user."""
        from harness.e2e.airflow_api import AirflowAPI

        return AirflowAPI(self.api_url, ADMIN_USER, ADMIN_PASSWORD, timeout=timeout)


# --- command line -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.e2e.airflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_install = sub.add_parser("install", help="create or reuse the Airflow venv; print its path")
    p_install.add_argument("--venv", type=Path, help="venv directory (default: cached per hash)")
    p_install.add_argument("--python", help="interpreter that creates the venv")
    p_up = sub.add_parser("up", help="run a stack in the foreground until Ctrl-C")
    p_up.add_argument("--database-url", required=True)
    p_up.add_argument("--broker-url", required=True)
    p_up.add_argument("--dags", type=Path, required=True)
    p_up.add_argument("--work-dir", type=Path)
    p_up.add_argument("--venv", type=Path)
    p_up.add_argument("--workers", type=int, default=0, help="Celery workers w-0, w-1, ...")
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            result = install(args.venv, python=args.python)
            what = f"created in {result.seconds:.0f} s" if result.created else "reused"
            print(f"{result.venv}  (Airflow {result.airflow_version}, {what})")
            return 0
        with AirflowStack(
            database_url=args.database_url,
            broker_url=args.broker_url,
            dags_folder=args.dags,
            work_dir=args.work_dir,
            venv=args.venv,
        ) as stack:
            for i in range(args.workers):
                stack.start_worker(f"w-{i}")
            print(f"Airflow up in {stack.startup_seconds:.0f} s: {stack.api_url} (admin/admin)")
            print(f"flower: {stack.flower_url}  logs: {stack.logs_dir}  pids: {stack.pids()}")
            while True:
                stack.check_alive()
                time.sleep(2)
    except (AirflowUnavailable, AirflowStackError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
