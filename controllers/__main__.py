"""`python -m controllers`: the ElasticWorker and ElasticWorkerAutoscaler operator.

    python -m controllers [--kubeconfig FILE] [--namespace NS] [--leader-election]
                          [--redis-url redis://...] [--sync-period 5]

Runs against `--kubeconfig`, else in-cluster, else the default kubeconfig.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from controllers.kube.leader import LEASE_NAME, default_identity
from controllers.kube.operator import RESYNC_PERIOD, SYNC_PERIOD, WORKERS, OperatorConfig

_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0 (got {text})")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m controllers",
        description="Operator for ElasticWorker and ElasticWorkerAutoscaler resources.",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster or ~/.kube)")
    parser.add_argument(
        "--namespace", default=os.environ.get("WATCH_NAMESPACE") or None,
        help="watch only this namespace (default: all namespaces)",
    )  # fmt: skip
    parser.add_argument(
        "--sync-period", type=_positive, default=SYNC_PERIOD,
        help=f"autoscaler sync period, seconds (default {SYNC_PERIOD:g})",
    )  # fmt: skip
    parser.add_argument(
        "--resync-period", type=_positive, default=RESYNC_PERIOD,
        help=f"ElasticWorker resync period, seconds (default {RESYNC_PERIOD:g})",
    )  # fmt: skip
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL") or None,
        help="Redis holding the collector's metrics (default $REDIS_URL; none: load unknown)",
    )  # fmt: skip
    parser.add_argument("--leader-election", action="store_true", help="run only while leading")
    parser.add_argument("--lease-name", default=LEASE_NAME)
    parser.add_argument(
        "--lease-namespace",
        help="namespace of the Lease (default: --namespace, else the pod's, else default)",
    )
    parser.add_argument("--identity", help="leader election identity (default host_pid_random)")
    parser.add_argument("--workers", type=int, default=WORKERS, help="reconcile threads")
    parser.add_argument(
        "--liveness", help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz"
    )
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    return parser.parse_args(argv)


def lease_namespace(args: argparse.Namespace) -> str:
    if args.lease_namespace:
        return args.lease_namespace
    if args.namespace:
        return args.namespace
    try:
        return _SA_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Imported here so that --help works without a cluster or optional dependencies.
    from controllers.kube.client import load_api_client
    from controllers.kube.operator import run, setup_logging
    from controllers.metrics.source import NoMetrics, RedisMetrics

    setup_logging(args.log_level)
    api = load_api_client(args.kubeconfig)
    metrics = RedisMetrics(args.redis_url) if args.redis_url else NoMetrics()
    config = OperatorConfig(
        namespace=args.namespace,
        sync_period=args.sync_period,
        resync_period=args.resync_period,
        leader_election=args.leader_election,
        lease_namespace=lease_namespace(args),
        lease_name=args.lease_name,
        identity=args.identity or default_identity(),
        workers=args.workers,
        liveness=args.liveness,
    )
    return run(api, config, metrics)


if __name__ == "__main__":
    sys.exit(main())
