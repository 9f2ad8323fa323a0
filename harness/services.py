"""Private Redis, RabbitMQ and PostgreSQL processes for tests and the local e2e cluster.

Each server is a context manager that starts its own processes on free 127.0.0.1
ports with all its state in a fresh temporary directory, waits until the server
answers, and stops every process it started by pid: the stop signal first,
SIGKILL after `stop_timeout`, on normal exit and on exceptions alike. Each
process runs in its own session (`start_new_session`), so helpers it forks
(RabbitMQ's beam, erl_child_setup, inet_gethost; PostgreSQL's backends) are
killed with its process group. Nothing listens on another address, nothing is
written outside the temporary directory, and the system services installed by
the Debian packages are never used.

    with RabbitMQServer() as rabbit, RedisServer() as redis:
        app = Celery(broker=rabbit.url)
        ...

A missing binary raises `MissingBinary`, whose message names the Debian package
to install: tests fail, they never skip.

`startup_seconds` is the time from spawning the first process until the server
answered (for PostgreSQL: initdb included, database creation included).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from base64 import b64encode
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from harness.managed import Managed

LOOPBACK = "127.0.0.1"
#: The unprivileged system user that runs PostgreSQL when we are root.
SYSTEM_USER = "eaflow"
NOLOGIN = "/usr/sbin/nologin"
#: Where Debian installs the PostgreSQL server binaries (not on PATH).
POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
#: Overrides the PostgreSQL binary directory (tox passes ELASTIC_AIRFLOW_* through).
POSTGRES_BIN_ENV = "ELASTIC_AIRFLOW_PG_BIN"

_LOG_TAIL_BYTES = 4000
# Another process (an xdist sibling) may take a port between our probe and the
# server's bind; a fresh set of ports on retry makes that harmless.
_START_ATTEMPTS = 3
_PORT_TAKEN_MARKERS = ("address already in use", "eaddrinuse", "could not bind")
_instance_ids = itertools.count()


def http_ok(url: str, basic_auth: tuple[str, str] | None = None, timeout: float = 3) -> bool:
    """Whether `url` answers 200 (with HTTP basic auth when given); any failure is a no."""
    headers = {}
    if basic_auth is not None:
        token = b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        ) as r:
            return r.status == 200
    except (OSError, ValueError):  # URLError and HTTPError are OSErrors
        return False


class ServiceError(RuntimeError):
    """A server did not start, or died; the message carries its log's tail."""


class MissingBinary(ServiceError):
    """A server's binary is not installed; the message names the Debian package."""


# --- small helpers ----------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (held open together while probing, so never equal)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_binary(
    name: str,
    package: str,
    *,
    search_dirs: Sequence[str | Path] = (),
) -> str:
    """The path of `name`: first in `search_dirs`, then on PATH; else `MissingBinary`."""
    for directory in search_dirs:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise MissingBinary(
        f"`{name}` not found (looked in {[str(d) for d in search_dirs]} and PATH): "
        f"install the Debian package with `apt-get install -y {package}`"
    )


def ensure_system_user(name: str = SYSTEM_USER) -> tuple[int, int]:
    """uid and gid of system user `name`, created (no home, no login) if missing.

    Safe to call from several processes at once (pytest-xdist workers).
    """
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(name)
        return entry.pw_uid, entry.pw_gid
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--shell", NOLOGIN, name],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ServiceError(
            f"could not create system user {name!r}: {result.stderr.strip() or result.returncode}"
        ) from None
    return entry.pw_uid, entry.pw_gid


def _traversable_by_others(path: Path) -> bool:
    """Whether every directory from / to `path` lets other users pass through."""
    path = path.resolve()
    for part in (path, *path.parents):
        try:
            if not part.stat().st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class _ProcInfo:
    pid: int
    ppid: int
    session: int
    state: str
    start_ticks: int


def _proc_table() -> dict[int, _ProcInfo]:
    """Every process visible in /proc, by pid."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ... starttime(22nd); comm may hold spaces and ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) < 20:
            continue
        pid = int(entry.name)
        table[pid] = _ProcInfo(pid, int(fields[1]), int(fields[3]), fields[0], int(fields[19]))
    return table


def _session_members(session_id: int) -> list[int]:
    """Pids of the live (non-zombie) processes whose session id is `session_id`."""
    return [
        info.pid
        for info in _proc_table().values()
        if info.session == session_id and info.state != "Z"
    ]


def _descendants(pid: int) -> list[_ProcInfo]:
    """Every process below `pid` in the process tree, whatever its session."""
    table = _proc_table()
    children: dict[int, list[_ProcInfo]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def _kill_if_same(info: _ProcInfo) -> None:
    """SIGKILL `info.pid` unless it has gone or the pid now names another process."""
    current = _proc_table().get(info.pid)
    if current is not None and current.start_ticks == info.start_ticks and current.state != "Z":
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGKILL)


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


def _wait_session_gone(session_id: int, timeout: float) -> list[int]:
    """Wait until the session is empty; return any members left after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        left = _session_members(session_id)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


@dataclass(eq=False)
class ManagedProcess:
    """A child process that leads its own session; stopped with everything it forked."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, limit: int = _LOG_TAIL_BYTES) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - limit))
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float) -> int | None:
        """`stop_signal` to the leader, SIGKILL to its group after `timeout`; return its exit code.

        Whatever is left afterwards of its session or of the process tree below it
        (helpers that outlived the leader or started sessions of their own, such as
        Erlang's erl_child_setup and inet_gethost) is SIGKILLed too.
        """
        session = self.proc.pid  # start_new_session: pid == pgid == sid
        tree = _descendants(self.proc.pid)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_group(session, signal.SIGKILL)
                self.proc.wait()
        _kill_group(session, signal.SIGKILL)
        for info in tree:
            _kill_if_same(info)
        for pid in _wait_session_gone(session, 1.0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _wait_session_gone(session, 5.0)
        return self.proc.returncode

    def process_tree(self) -> list[int]:
        """Pids of the leader and every process below it, now."""
        return [self.pid, *(info.pid for info in _descendants(self.pid))] if self.alive else []


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: tuple[int, int] | None = None,
    stop_signal: int = signal.SIGTERM,
) -> ManagedProcess:
    """Start `argv` in a new session, stdout and stderr appended to `log_path`."""
    extra: dict[str, object] = {}
    if user is not None:
        extra = {"user": user[0], "group": user[1], "extra_groups": []}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            **extra,  # type: ignore[arg-type]
        )
    return ManagedProcess(name, proc, log_path, stop_signal)


class _PortTaken(ServiceError):
    pass


# --- the common lifecycle ---------------------------------------------------------------------


class PrivateServer(Managed):
    """Start/stop lifecycle shared by the servers below; a context manager."""

    kind = "server"

    def __init__(
        self,
        *,
        startup_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        keep_dir: bool = False,
        workdir_parent: str | Path | None = None,
    ) -> None:
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.keep_dir = keep_dir
        self.workdir_parent = Path(workdir_parent or tempfile.gettempdir())
        self.workdir: Path | None = None
        self.startup_seconds: float = 0.0
        self.instance = f"{os.getpid()}-{next(_instance_ids)}-{uuid.uuid4().hex[:6]}"
        self._procs: list[ManagedProcess] = []

    # -- context manager ------------------------------------------------------------------------

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server and wait until it answers; clean everything up on failure."""
        if self._procs:
            raise ServiceError(f"{self.kind} already started")
        self._check_binaries()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"ea-{self.kind}-", dir=self.workdir_parent))
        atexit.register(self.stop)
        try:
            for attempt in range(1, _START_ATTEMPTS + 1):
                started = time.monotonic()
                try:
                    self._launch(attempt)
                    self._wait_ready(started + self.startup_timeout)
                except _PortTaken:
                    self._stop_processes()
                    if attempt == _START_ATTEMPTS:
                        raise
                    continue
                self.startup_seconds = time.monotonic() - started
                return self
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop every process by pid (last started first) and remove the work directory."""
        atexit.unregister(self.stop)
        self._stop_processes()
        if self.workdir is not None and not self.keep_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _stop_processes(self) -> None:
        while self._procs:
            self._procs.pop().stop(self.stop_timeout)

    @property
    def running(self) -> bool:
        return bool(self._procs) and all(p.alive for p in self._procs)

    def pids(self) -> dict[str, int]:
        """Pid of each running process, by name (each leads its own session and group)."""
        return {p.name: p.pid for p in self._procs}

    def process_tree(self) -> list[int]:
        """Pids of every process the server runs now: leaders and all their descendants."""
        return [pid for p in self._procs for pid in p.process_tree()]

    def log_tail(self) -> str:
        return "\n".join(f"--- {p.name} ({p.log_path}) ---\n{p.log_tail()}" for p in self._procs)

    # -- for subclasses -------------------------------------------------------------------------

    def _check_binaries(self) -> None:
        """Resolve the binaries, raising `MissingBinary` before anything is created."""

    def _launch(self, attempt: int) -> None:
        raise NotImplementedError

    def _wait_ready(self, deadline: float) -> None:
        raise NotImplementedError

    def _spawn(self, name: str, argv: Sequence[str], **kwargs: object) -> ManagedProcess:
        assert self.workdir is not None
        log_path = self.workdir / f"{name}.log"
        proc = spawn(name, argv, log_path=log_path, **kwargs)  # type: ignore[arg-type]
        self._procs.append(proc)
        return proc

    def _wait_until(self, ready: Callable[[], bool], deadline: float, what: str) -> None:
        """Poll `ready` until it is true; fail early when one of our processes died."""
        last_error: BaseException | None = None
        while True:
            for proc in self._procs:
                if not proc.alive:
                    tail = proc.log_tail()
                    lowered = tail.lower()
                    message = (
                        f"{self.kind}: {proc.name} (pid {proc.pid}) exited with "
                        f"{proc.proc.returncode} before {what}; log tail:\n{tail}"
                    )
                    if any(marker in lowered for marker in _PORT_TAKEN_MARKERS):
                        raise _PortTaken(message)
                    raise ServiceError(message)
            try:
                if ready():
                    return
            except Exception as error:
                last_error = error
            if time.monotonic() >= deadline:
                raise ServiceError(
                    f"{self.kind}: no answer ({what}) within {self.startup_timeout:.0f} s "
                    f"(last error: {last_error!r}); logs:\n{self.log_tail()}"
                )
            time.sleep(0.1)


# --- Redis -----------------------------------------------------------------------------------


class RedisServer(PrivateServer):
    """`redis-server` on a free port: no persistence, bound to 127.0.0.1.

    `.url` is `redis://127.0.0.1:PORT/0`.
    """

    kind = "redis"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.port = 0
        self._binary = ""

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def _check_binaries(self) -> None:
        self._binary = find_binary("redis-server", "redis-server")

    def _launch(self, attempt: int) -> None:
        assert self.workdir is not None
        self.port = free_port()
        argv = [
            self._binary,
            "--port", str(self.port),
            "--bind", LOOPBACK,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
            "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip
        self._spawn("redis-server", argv, cwd=self.workdir)

    def _wait_ready(self, deadline: float) -> None:
        self._wait_until(lambda: self.ping(), deadline, "PING")

    def ping(self, timeout: float = 1.0) -> bool:
        """A raw RESP PING: True when the server answers PONG."""
        with socket.create_connection((LOOPBACK, self.port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")


# --- RabbitMQ --------------------------------------------------------------------------------

_RABBITMQ_SEARCH = ("/usr/lib/rabbitmq/bin",)
_EPMD_SEARCH = ("/usr/lib/erlang/bin",)


class RabbitMQServer(PrivateServer):
    """A private RabbitMQ node with its own epmd, everything on 127.0.0.1.

    Started as the unwrapped `/usr/lib/rabbitmq/bin/rabbitmq-server` (Debian's
    `/usr/sbin` wrapper would switch to the `rabbitmq` user and the system's
    directories). Node name `rabbit-<unique>@localhost`; AMQP, distribution,
    epmd and (optionally) management ports are all free ports picked at start;
    mnesia, logs, config, enabled-plugins file, pid file and Erlang cookie
    (`HOME`) live in the temporary directory. The private epmd is started by us
    in the foreground and the node is told not to start its own
    (`-start_epmd false`), so no stray `epmd -daemon` outlives the server.

    `consumer_timeout_ms`: RabbitMQ closes the channel of a consumer that holds
    an unacknowledged delivery longer than this (default 30 minutes since
    3.8.15), and the message is redelivered. Celery with `task_acks_late=True`
    (Airflow's default) acknowledges only when a task ends, so a task running
    longer than the timeout is killed with its channel and runs again. Set it
    above the longest task (production: `consumer_timeout` in rabbitmq.conf);
    `None` keeps RabbitMQ's default, `0`/negative is not accepted by RabbitMQ
    3.10, use a large value instead.

    `.url` is `amqp://guest:guest@127.0.0.1:PORT//` (guest may log in from the
    loopback only, which is all we use). With `management=True`,
    `.management_url` is `http://127.0.0.1:MPORT/` (guest/guest).
    """

    kind = "rabbitmq"

    def __init__(
        self,
        *,
        management: bool = False,
        consumer_timeout_ms: int | None = None,
        extra_config: Sequence[str] = (),
        startup_timeout: float = 90.0,
        stop_timeout: float = 20.0,
        **kwargs: object,
    ) -> None:
        super().__init__(startup_timeout=startup_timeout, stop_timeout=stop_timeout, **kwargs)  # type: ignore[arg-type]
        self.management = management
        self.consumer_timeout_ms = consumer_timeout_ms
        self.extra_config = list(extra_config)
        self.port = 0
        self.dist_port = 0
        self.epmd_port = 0
        self.management_port = 0
        self.nodename = f"rabbit-{self.instance}@localhost"
        self._server_binary = ""
        self._epmd_binary = ""

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{LOOPBACK}:{self.port}//"

    @property
    def management_url(self) -> str | None:
        return f"http://{LOOPBACK}:{self.management_port}/" if self.management else None

    def _check_binaries(self) -> None:
        self._server_binary = find_binary(
            "rabbitmq-server", "rabbitmq-server", search_dirs=_RABBITMQ_SEARCH
        )
        self._epmd_binary = find_binary("epmd", "rabbitmq-server", search_dirs=_EPMD_SEARCH)

    def config_text(self) -> str:
        """The rabbitmq.conf (new-style) this node runs with."""
        lines = [
            "# written by harness.services.RabbitMQServer",
            "loopback_users.guest = true",
            "log.console = true",
            "log.console.level = info",
            "log.file = false",
        ]
        if self.consumer_timeout_ms is not None:
            lines.append(f"consumer_timeout = {int(self.consumer_timeout_ms)}")
        if self.management:
            lines += [
                f"management.tcp.port = {self.management_port}",
                f"management.tcp.ip = {LOOPBACK}",
            ]
        lines += self.extra_config
        return "\n".join(lines) + "\n"

    def _launch(self, attempt: int) -> None:
        assert self.workdir is not None
        run = self.workdir / f"run-{attempt}"
        for sub in ("mnesia", "log", "plugins-expand", "schema", "config"):
            (run / sub).mkdir(parents=True)
        self.port, self.dist_port, self.epmd_port, self.management_port = free_ports(4)

        config = run / "rabbitmq.conf"
        config.write_text(self.config_text())
        plugins = run / "enabled_plugins"
        plugins.write_text("[rabbitmq_management].\n" if self.management else "[].\n")
        env_file = run / "rabbitmq-env.conf"
        env_file.write_text("# empty: ignore /etc/rabbitmq/rabbitmq-env.conf\n")

        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RABBITMQ_", "ERL_")) and k != "HOME"
        }
        env.update(
            HOME=str(run),  # the Erlang cookie goes here, private to this node
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS=LOOPBACK,
            # Every erl started with this environment (the node and RabbitMQ's
            # prelaunch helpers) listens for distribution on the loopback only.
            ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}",
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_USE_LONGNAME="false",
            RABBITMQ_NODE_IP_ADDRESS=LOOPBACK,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CONFIG_FILE=str(config),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(run / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(env_file),
            RABBITMQ_MNESIA_BASE=str(run / "mnesia"),
            RABBITMQ_LOG_BASE=str(run / "log"),
            RABBITMQ_LOGS="-",
            RABBITMQ_ENABLED_PLUGINS_FILE=str(plugins),
            RABBITMQ_PLUGINS_EXPAND_DIR=str(run / "plugins-expand"),
            RABBITMQ_PID_FILE=str(run / "rabbit.pid"),
            RABBITMQ_SCHEMA_DIR=str(run / "schema"),
            RABBITMQ_GENERATED_CONFIG_DIR=str(run / "config"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-start_epmd false",
        )
        epmd = [self._epmd_binary, "-port", str(self.epmd_port), "-address", LOOPBACK]
        self._spawn(f"epmd-{attempt}", epmd, env=env, cwd=run)
        self._wait_until(lambda: port_open(self.epmd_port), time.monotonic() + 10, "epmd")
        self._spawn(f"rabbitmq-server-{attempt}", [self._server_binary], env=env, cwd=run)

    def _wait_ready(self, deadline: float) -> None:
        self._wait_until(self._amqp_ready, deadline, "AMQP login")
        if self.management:
            self._wait_until(self._management_ready, deadline, "management API")

    def _amqp_ready(self) -> bool:
        if not port_open(self.port):
            return False
        try:
            from kombu import Connection
        except ImportError as error:  # pragma: no cover - kombu comes with celery
            raise ServiceError(
                "RabbitMQServer needs kombu: pip install 'celery>=5.5,<5.7'"
            ) from error
        with Connection(self.url, connect_timeout=2) as connection:
            connection.ensure_connection(max_retries=1)
            return connection.connected

    def _management_ready(self) -> bool:
        return http_ok(f"{self.management_url}api/overview", ("guest", "guest"), timeout=2)


# --- PostgreSQL ------------------------------------------------------------------------------


class PostgresServer(PrivateServer):
    """A throwaway PostgreSQL cluster (initdb in the temporary directory).

    PostgreSQL refuses to run as root, so when we are root the cluster is owned
    and run by the system user `eaflow` (created if missing). Authentication is
    `trust` on 127.0.0.1 and the socket directory (the password in `.url` is
    accepted and ignored); durability is off (`fsync`, `synchronous_commit`,
    `full_page_writes`), it is for tests. The database `database` is created.

    `.url` is `postgresql://USER:PASSWORD@127.0.0.1:PORT/DATABASE`;
    `sqlalchemy_url("psycopg2")` gives the `postgresql+psycopg2://` form Airflow wants.
    """

    kind = "postgres"

    def __init__(
        self,
        *,
        database: str = "airflow",
        user: str = "airflow",
        password: str = "airflow",
        run_as: str = SYSTEM_USER,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.database = database
        self.user = user
        self.password = password
        self.run_as = run_as
        self.port = 0
        self._bin: dict[str, str] = {}
        self._owner: tuple[int, int] | None = None

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def url(self) -> str:
        return self.sqlalchemy_url(None)

    def sqlalchemy_url(self, driver: str | None = "psycopg2") -> str:
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        auth = f"{self.user}:{self.password}"
        return f"{scheme}://{auth}@{LOOPBACK}:{self.port}/{self.database}"

    @property
    def socket_dir(self) -> Path:
        assert self.workdir is not None
        return self.workdir

    def _check_binaries(self) -> None:
        override = os.environ.get(POSTGRES_BIN_ENV)
        dirs = [override] if override else []
        dirs += sorted(
            (str(p) for p in Path("/").glob(POSTGRES_BIN_GLOB.lstrip("/"))),
            key=lambda d: [int(x) if x.isdigit() else 0 for x in Path(d).parent.name.split(".")],
            reverse=True,
        )
        for name in ("initdb", "postgres", "pg_isready", "psql"):
            self._bin[name] = find_binary(name, "postgresql", search_dirs=dirs)

    def _launch(self, attempt: int) -> None:
        assert self.workdir is not None
        if os.geteuid() == 0:
            self._owner = ensure_system_user(self.run_as)
            if not _traversable_by_others(self.workdir):
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = Path(tempfile.mkdtemp(prefix=f"ea-{self.kind}-", dir="/tmp"))
            os.chown(self.workdir, *self._owner)
        data = self.workdir / f"data-{attempt}"
        self.port = free_port()
        initdb = [
            self._bin["initdb"],
            "-D", str(data),
            "-U", self.user,
            "--auth=trust",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
        ]  # fmt: skip
        result = subprocess.run(
            initdb,
            cwd=self.workdir,
            env=self._env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=self.startup_timeout,
            **self._user_kwargs(),  # type: ignore[arg-type]
        )
        if result.returncode != 0:
            raise ServiceError(
                f"initdb failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        postgres = [
            self._bin["postgres"],
            "-D", str(data),
            "-p", str(self.port),
            "-k", str(self.socket_dir),
            "-c", f"listen_addresses={LOOPBACK}",
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=200",
        ]  # fmt: skip
        # SIGINT is PostgreSQL's "fast shutdown" (SIGTERM would wait for clients).
        self._spawn(
            f"postgres-{attempt}",
            postgres,
            env=self._env(),
            cwd=self.workdir,
            user=self._owner,
            stop_signal=signal.SIGINT,
        )

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if self.workdir is not None:
            env["HOME"] = str(self.workdir)
        env["LC_ALL"] = "C"
        return env

    def _user_kwargs(self) -> dict[str, object]:
        if self._owner is None:
            return {}
        return {"user": self._owner[0], "group": self._owner[1], "extra_groups": []}

    def _wait_ready(self, deadline: float) -> None:
        self._wait_until(self._accepting, deadline, "pg_isready")
        self.psql(f'CREATE DATABASE "{self.database}"', database="postgres")

    def _accepting(self) -> bool:
        argv = [self._bin["pg_isready"], "-q", "-h", LOOPBACK, "-p", str(self.port)]
        argv += ["-U", self.user]
        return subprocess.run(argv, env=self._env(), check=False, timeout=5).returncode == 0

    def psql(self, sql: str, *, database: str | None = None, timeout: float = 30.0) -> str:
        """Run `sql` with psql over TCP; return its unaligned, tuples-only output."""
        argv = [
            self._bin["psql"],
            "-X", "-A", "-t", "-q",
            "-v", "ON_ERROR_STOP=1",
            "-h", LOOPBACK,
            "-p", str(self.port),
            "-U", self.user,
            "-d", database or self.database,
            "-c", sql,
        ]  # fmt: skip
        result = subprocess.run(
            argv, env=self._env(), capture_output=True, text=True, check=False, timeout=timeout
        )
        if result.returncode != 0:
            raise ServiceError(
                f"psql {sql!r} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result.stdout.strip()
