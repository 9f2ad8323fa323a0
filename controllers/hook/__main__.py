"""`python -m controllers.hook`: run the drain hook service.

    python -m controllers.hook --broker-url amqp://... --queues default \\
        --port 5559 --bind 127.0.0.1 --token-file /var/run/secrets/hook/token

The broker URL may come from env `HOOK_BROKER_URL` or
`AIRFLOW__CELERY__BROKER_URL` instead (it holds a password: keep it out of the
command line in production). The token comes from `--token-file` (a mounted
Kubernetes Secret, re-read on each request) or env `HOOK_TOKEN`; with neither,
requests are not authenticated and a warning is logged. SIGTERM and SIGINT
stop the service.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from controllers.hook.drain import CeleryDrainer
from controllers.hook.server import HookServer, TokenSource

log = logging.getLogger("controllers.hook")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m controllers.hook",
        description="Drain hook: cordon, inspect and restore Celery workers by pod name.",
    )
    parser.add_argument(
        "--broker-url",
        default=os.environ.get("HOOK_BROKER_URL") or os.environ.get("AIRFLOW__CELERY__BROKER_URL"),
        help="Celery broker URL (default: env HOOK_BROKER_URL or AIRFLOW__CELERY__BROKER_URL)",
    )
    parser.add_argument(
        "--queues",
        action="append",
        default=None,
        help="queue(s) the workers consume, comma-separated or repeated (default: default)",
    )
    parser.add_argument("--port", type=int, default=5559, help="0 picks a free port")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (pods: 0.0.0.0)")
    parser.add_argument("--token-file", help="file holding the bearer token (else env HOOK_TOKEN)")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds per Celery remote-control call"
    )
    parser.add_argument("--control-exchange", default="celery", help="Celery's control_exchange")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if not args.broker_url:
        parser.error("--broker-url (or env HOOK_BROKER_URL) is required")
    queues = [q.strip() for value in args.queues or ["default"] for q in value.split(",")]
    args.queues = [q for q in queues if q]
    if not args.queues:
        parser.error("--queues names no queue")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        tokens = TokenSource(token=os.environ.get("HOOK_TOKEN"), token_file=args.token_file)
    except (OSError, ValueError) as error:
        log.error("cannot load the token: %s", error)
        return 2
    if not tokens.required:
        log.warning("no token configured (--token-file / HOOK_TOKEN): requests are not checked")
    drainer = CeleryDrainer(
        args.broker_url,
        args.queues,
        timeout=args.timeout,
        control_exchange=args.control_exchange,
    )
    server = HookServer((args.bind, args.port), drainer, tokens)

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "hook listening on %s:%d queues=%s timeout=%.1fs auth=%s",
        args.bind,
        server.port,
        ",".join(args.queues),
        args.timeout,
        "bearer" if tokens.required else "none",
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
        drainer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
