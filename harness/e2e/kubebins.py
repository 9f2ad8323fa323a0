"""kube-apiserver and etcd binaries for the local control plane.

Follows controller-runtime envtest: binaries come from `KUBEBUILDER_ASSETS` when
set. Otherwise they are built once from the Go module proxy (the Go modules
under `gobuild/` pin the released versions; their go.sum makes the build
reproducible) and cached per version in the user's cache directory.

    python -m harness.e2e.kubebins            # build if needed, print the directory
    python -m harness.e2e.kubebins --print-versions
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ASSETS_ENV = "KUBEBUILDER_ASSETS"
GOBUILD_DIR = Path(__file__).resolve().parent / "gobuild"
BINARY_NAMES = ("kube-apiserver", "etcd")
_OUTPUT_TAIL_LINES = 40


class BinariesUnavailable(RuntimeError):
    """The binaries are neither provided nor buildable; tests must fail on this."""


@dataclass(frozen=True)
class GoTarget:
    """One binary: the module dir that pins it and the main package to build."""

    binary: str
    module_dir: Path
    module: str
    package: str
    version_package: str | None = None

    def ldflags(self) -> str:
        """Strip symbols; stamp the version where `go build` alone would not."""
        flags = ["-s", "-w"]
        if self.version_package:
            flags += _version_stamp(self.version_package, self.version())
        return " ".join(flags)

    def version(self) -> str:
        """The pinned version, read from go.mod so it is stated in one place only."""
        text = (self.module_dir / "go.mod").read_text()
        match = re.search(rf"^\s*(?:require\s+)?{re.escape(self.module)}\s+(v\S+)", text, re.M)
        if match is None:
            raise BinariesUnavailable(f"{self.module} is not required in {self.module_dir}/go.mod")
        return match.group(1)


TARGETS = (
    GoTarget(
        "etcd", GOBUILD_DIR / "etcd", "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/server/v3"
    ),
    GoTarget(
        "kube-apiserver",
        GOBUILD_DIR / "kubernetes",
        "k8s.io/kubernetes",
        "k8s.io/kubernetes/cmd/kube-apiserver",
        version_package="k8s.io/component-base/version",
    ),
)


def _version_stamp(package: str, version: str) -> list[str]:
    # What Kubernetes' hack/lib/version.sh sets; without it /version reports
    # v0.0.0-master, which version-aware clients reject or warn about.
    major, minor = version.lstrip("v").split(".")[:2]
    values = {"gitVersion": version, "gitMajor": major, "gitMinor": minor}
    values["gitTreeState"] = "clean"
    return [f"-X {package}.{name}={value}" for name, value in values.items()]


def versions() -> dict[str, str]:
    """Pinned version of each binary, e.g. {"kube-apiserver": "v1.34.4", ...}."""
    return {target.binary: target.version() for target in TARGETS}


def cache_dir() -> Path:
    """Where the built binaries of the pinned versions live."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    pinned = versions()
    key = f"{pinned['kube-apiserver']}-{pinned['etcd']}"
    return base / "elastic-airflow" / "kubebins" / key


def _missing(directory: Path) -> list[str]:
    return [
        name
        for name in BINARY_NAMES
        if not (directory / name).is_file() or not os.access(directory / name, os.X_OK)
    ]


def _from_assets_env(value: str) -> Path:
    directory = Path(value).expanduser()
    missing = _missing(directory)
    if missing:
        raise BinariesUnavailable(f"{ASSETS_ENV}={value} lacks executable {', '.join(missing)}")
    return directory


def ensure_binaries() -> Path:
    """Directory holding executable `kube-apiserver` and `etcd`, building them if needed."""
    assets = os.environ.get(ASSETS_ENV)
    if assets:
        return _from_assets_env(assets)
    target_dir = cache_dir()
    if not _missing(target_dir):
        return target_dir
    # pytest-xdist workers all arrive here at once: one builds, the others wait.
    with _build_lock(target_dir.parent):
        if _missing(target_dir):
            _build_all(target_dir)
    return target_dir


@contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _go_executable() -> str:
    go = shutil.which("go")
    if go is None:
        raise BinariesUnavailable(
            f"`go` is not on PATH: install Go >= 1.24, or set {ASSETS_ENV} to a directory "
            "holding kube-apiserver and etcd (e.g. from `setup-envtest use -p path`)"
        )
    return go


def _build_all(target_dir: Path) -> None:
    go = _go_executable()
    # Build into a sibling temp dir and rename it, so a crash never leaves a
    # half-populated cache directory that would look complete.
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target_dir.parent))
    try:
        started = time.monotonic()
        for target in TARGETS:
            _build_one(go, target, staging / target.binary)
        if target_dir.exists():
            shutil.rmtree(target_dir)
        staging.rename(target_dir)
        _progress(f"binaries ready in {target_dir} ({time.monotonic() - started:.0f} s)")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build_env() -> dict[str, str]:
    env = dict(os.environ)
    # Static binaries, and never a silent toolchain download from the network.
    env.setdefault("CGO_ENABLED", "0")
    env.setdefault("GOTOOLCHAIN", "local")
    return env


def _build_one(go: str, target: GoTarget, output: Path) -> None:
    version = target.version()
    _progress(f"building {target.binary} {version} with {go} (first run only, takes minutes)")
    started = time.monotonic()
    command = [go, "build", "-trimpath", f"-ldflags={target.ldflags()}", "-o", str(output)]
    command.append(target.package)
    result = subprocess.run(
        command,
        cwd=target.module_dir,
        env=_build_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-_OUTPUT_TAIL_LINES:])
        raise BinariesUnavailable(
            f"building {target.binary} {version} failed (exit {result.returncode}):\n"
            f"  cd {target.module_dir} && {' '.join(command)}\n{tail}"
        )
    size_mb = output.stat().st_size / 1e6
    _progress(f"built {target.binary} in {time.monotonic() - started:.0f} s ({size_mb:.0f} MB)")


def _progress(message: str) -> None:
    print(f"kubebins: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.e2e.kubebins",
        description="Build (once) and locate kube-apiserver and etcd for the local control plane.",
    )
    parser.add_argument(
        "--print-versions", action="store_true", help="print the pinned versions and exit"
    )
    args = parser.parse_args(argv)
    if args.print_versions:
        for name, version in versions().items():
            print(f"{name} {version}")
        return 0
    try:
        print(ensure_binaries())
    except BinariesUnavailable as error:
        print(f"kubebins: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
