"""A real, throwaway Kubernetes control plane: etcd plus kube-apiserver, no Docker.

Configured the way controller-runtime's envtest does it: loopback ports picked
at start, a generated CA, an admin client certificate in `system:masters`,
RBAC authorisation and no controller-manager or scheduler. Pods need the
local node agent (`harness.e2e.nodeagent`) to be bound and run.

    with LocalControlPlane() as cp:
        api = kubernetes.client.CoreV1Api(cp.api_client())
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from harness.e2e.certs import CertificateAuthority, KeyPair, service_account_keys, write_private
from harness.e2e.kubebins import ensure_binaries
from harness.managed import Managed

LOOPBACK = "127.0.0.1"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
_LOG_TAIL_BYTES = 4000
# Another process (an xdist sibling) may grab a port between our probe and the
# server's bind; a fresh set of ports on retry makes that harmless.
_START_ATTEMPTS = 3


class ControlPlaneError(RuntimeError):
    """The control plane did not come up; the message carries the logs' tails."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """SIGTERM the process by pid, SIGKILL it after `timeout`; return its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@dataclass
class _Server:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-_LOG_TAIL_BYTES:].decode(errors="replace")


@dataclass
class _Credentials:
    ca: CertificateAuthority
    ca_path: Path
    serving: tuple[Path, Path]
    sa_public: Path
    sa_private: Path


@dataclass(eq=False)
class LocalControlPlane(Managed):
    """etcd and kube-apiserver on free loopback ports; a context manager.

    `binaries_dir` defaults to `ensure_binaries()` (KUBEBUILDER_ASSETS or the
    cached build). `keep_dir` keeps the work directory (logs, data) after stop.
    """

    binaries_dir: Path | None = None
    startup_timeout: float = 90.0
    stop_timeout: float = 15.0
    keep_dir: bool = False
    extra_apiserver_flags: list[str] = field(default_factory=list)

    workdir: Path = field(init=False)
    server: str = field(init=False, default="")
    etcd_url: str = field(init=False, default="")
    kubeconfig_path: Path = field(init=False)
    startup_seconds: float = field(init=False, default=0.0)
    _servers: list[_Server] = field(init=False, default_factory=list)
    _credentials: _Credentials | None = field(init=False, default=None)

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Start etcd and kube-apiserver and wait for `/readyz`; clean up on failure."""
        binaries = self.binaries_dir or ensure_binaries()
        self.workdir = Path(tempfile.mkdtemp(prefix="ea-controlplane-"))
        atexit.register(self.stop)
        try:
            self._credentials = self._write_credentials()
            self._start_with_retries(binaries)
        except BaseException:
            self.stop()
            raise

    def _start_with_retries(self, binaries: Path) -> None:
        for attempt in range(1, _START_ATTEMPTS + 1):
            started = time.monotonic()
            try:
                self._start_servers(binaries, attempt)
                self._wait_ready(started + self.startup_timeout)
            except ControlPlaneError as error:
                address_taken = "address already in use" in str(error)
                self._stop_servers()
                if not address_taken or attempt == _START_ATTEMPTS:
                    raise
                continue
            self.startup_seconds = time.monotonic() - started
            return

    def _start_servers(self, binaries: Path, attempt: int) -> None:
        etcd_port, api_port = free_port(), free_port()
        self.etcd_url = f"http://{LOOPBACK}:{etcd_port}"
        self.server = f"https://{LOOPBACK}:{api_port}"
        data_dir = self.workdir / f"etcd-data-{attempt}"
        self._spawn("etcd", [str(binaries / "etcd"), *self._etcd_flags(data_dir)], attempt)
        apiserver = [str(binaries / "kube-apiserver"), *self._apiserver_flags(api_port)]
        self._spawn("kube-apiserver", apiserver, attempt)
        self.kubeconfig_path = self._write_kubeconfig("admin", ("system:masters",), "kubeconfig")

    def stop(self) -> None:
        """Stop both servers by pid (apiserver first) and remove the work directory."""
        atexit.unregister(self.stop)
        self._stop_servers()
        workdir = getattr(self, "workdir", None)
        if workdir is not None and not self.keep_dir:
            shutil.rmtree(workdir, ignore_errors=True)

    def _stop_servers(self) -> None:
        # The apiserver goes first so it never logs a storm of etcd connection errors.
        while self._servers:
            stop_process(self._servers.pop().proc, self.stop_timeout)

    def pids(self) -> dict[str, int]:
        """Pid of each running server, by name."""
        return {server.name: server.proc.pid for server in self._servers}

    # -- configuration -------------------------------------------------------

    def _write_credentials(self) -> _Credentials:
        pki = self.workdir / "pki"
        pki.mkdir()
        ca = CertificateAuthority()
        ca_path = pki / "ca.crt"
        ca_path.write_bytes(ca.cert_pem)
        hosts = (LOOPBACK, "localhost", "kubernetes", "kubernetes.default", "10.0.0.1")
        serving = ca.issue_server("kube-apiserver", hosts).write(pki, "apiserver")
        sa_keys = service_account_keys()
        sa_public, sa_private = pki / "sa.pub", pki / "sa.key"
        sa_public.write_bytes(sa_keys.cert_pem)
        write_private(sa_private, sa_keys.key_pem)
        return _Credentials(ca, ca_path, serving, sa_public, sa_private)

    def _etcd_flags(self, data_dir: Path) -> list[str]:
        return [
            f"--data-dir={data_dir}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            # Port 0: a single-member cluster never dials its peer URL, and a
            # fixed default (2380) would collide between parallel test workers.
            f"--listen-peer-urls=http://{LOOPBACK}:0",
            # Durability is pointless for a throwaway store and fsync dominates
            # write latency on CI disks.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_flags(self, port: int) -> list[str]:
        creds = self._require_credentials()
        cert, key = creds.serving
        return [
            f"--etcd-servers={self.etcd_url}",
            f"--secure-port={port}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--tls-cert-file={cert}",
            f"--tls-private-key-file={key}",
            f"--client-ca-file={creds.ca_path}",
            f"--service-account-issuer={self.server}",
            f"--service-account-key-file={creds.sa_public}",
            f"--service-account-signing-key-file={creds.sa_private}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            # No controller-manager runs to mint service-account tokens, so the
            # admission plugin would reject every pod.
            "--disable-admission-plugins=ServiceAccount",
            # Nothing is served at the cluster IPs; a lease reconciler would only churn.
            "--endpoint-reconciler-type=none",
            *self.extra_apiserver_flags,
        ]

    def _require_credentials(self) -> _Credentials:
        if self._credentials is None:
            raise ControlPlaneError("control plane not started")
        return self._credentials

    def _spawn(self, name: str, argv: list[str], attempt: int) -> None:
        log_path = self.workdir / f"{name}-{attempt}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                # Own session: a Ctrl-C in the test terminal must not kill the
                # servers before the fixture's orderly stop.
                start_new_session=True,
            )
        self._servers.append(_Server(name, proc, log_path))

    # -- readiness -----------------------------------------------------------

    def _wait_ready(self, deadline: float) -> None:
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                status, body = self.get("/readyz")
            except (OSError, urllib.error.URLError) as error:
                last_error = str(error)
            else:
                if status == 200:
                    return
                last_error = f"HTTP {status}: {body[-500:]}"
            time.sleep(0.2)
        raise ControlPlaneError(
            f"kube-apiserver not ready after {self.startup_timeout:.0f} s ({last_error})"
            f"{self._log_tails()}"
        )

    def _check_alive(self) -> None:
        for server in self._servers:
            if server.proc.poll() is not None:
                raise ControlPlaneError(
                    f"{server.name} exited with {server.proc.returncode}{self._log_tails()}"
                )

    def _log_tails(self) -> str:
        return "".join(
            f"\n--- {server.name} log tail ({server.log_path}) ---\n{server.log_tail()}"
            for server in self._servers
        )

    def _ssl_context(self, user: str = "admin", groups: tuple[str, ...] = ("system:masters",)):
        creds = self._require_credentials()
        context = ssl.create_default_context(cafile=str(creds.ca_path))
        cert, key = self._client_cert_files(user, groups)
        context.load_cert_chain(str(cert), str(key))
        return context

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """GET `path` as the admin user; return (status, body). No raise on HTTP errors."""
        request = urllib.request.Request(self.server + path)
        try:
            with urllib.request.urlopen(
                request, timeout=timeout, context=self._ssl_context()
            ) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    # -- clients -------------------------------------------------------------

    def _client_cert_files(self, user: str, groups: tuple[str, ...]) -> tuple[Path, Path]:
        stem = _safe_stem(user, groups)
        pki = self.workdir / "pki"
        cert, key = pki / f"{stem}.crt", pki / f"{stem}.key"
        if not cert.exists():
            self._require_credentials().ca.issue_client(user, groups).write(pki, stem)
        return cert, key

    def _write_kubeconfig(self, user: str, groups: tuple[str, ...], stem: str) -> Path:
        creds = self._require_credentials()
        cert, key = self._client_cert_files(user, groups)
        pair = KeyPair(cert.read_bytes(), key.read_bytes())
        path = self.workdir / f"{stem}.yaml"
        document = _kubeconfig(self.server, creds.ca.cert_pem, user, pair)
        write_private(path, yaml.safe_dump(document, sort_keys=False).encode())
        return path

    def kubeconfig_for(self, user: str, groups: tuple[str, ...] | list[str] = ()) -> Path:
        """A kubeconfig for `user` in `groups`, authenticated by a CA-signed client cert.

        The user has no permissions until a test grants them with RBAC objects.
        """
        groups = tuple(groups)
        return self._write_kubeconfig(user, groups, f"kubeconfig-{_safe_stem(user, groups)}")

    def api_client(self, kubeconfig: Path | None = None) -> k8s_client.ApiClient:
        """A Kubernetes client for the admin (or for the user of `kubeconfig`)."""
        path = kubeconfig or self.kubeconfig_path
        return k8s_config.new_client_from_config(config_file=str(path))


def _safe_stem(user: str, groups: tuple[str, ...]) -> str:
    raw = "_".join((user, *groups))
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in raw)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _kubeconfig(server: str, ca_pem: bytes, user: str, pair: KeyPair) -> dict[str, object]:
    # Credentials are embedded so the file stays valid wherever it is copied.
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(pair.cert_pem),
                    "client-key-data": _b64(pair.key_pem),
                },
            }
        ],
        "contexts": [{"name": user, "context": {"cluster": "local", "user": user}}],
        "current-context": user,
        "preferences": {},
    }


def _main() -> int:
    # Handy for poking at a cluster by hand: prints the kubeconfig and waits.
    with LocalControlPlane() as control_plane:
        print(f"ready in {control_plane.startup_seconds:.1f} s")
        print(f"export KUBECONFIG={control_plane.kubeconfig_path}")
        print(f"pids {control_plane.pids()} (Ctrl-C to stop)", flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
