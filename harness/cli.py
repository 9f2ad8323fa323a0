"""The `elastic-airflow` command line: sim, sweep, e2e (contract in DESIGN.md)."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elastic-airflow",
        description="Safe autoscaling of Airflow Celery workers: simulator and end-to-end harness.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{sim,sweep,e2e}")

    sim = sub.add_parser("sim", help="run one scenario in the SimPy simulated cluster")
    sim.add_argument("scenario", help="scenario YAML file")
    sim.add_argument("--policy", help="drain (default), seed, hpa or keda")
    sim.add_argument("--seed", type=int, help="random seed (default: the scenario's)")
    sim.add_argument("--json", metavar="FILE", help="write the summary JSON here")
    sim.add_argument("--html", metavar="DIR", help="write the HTML report into DIR")

    sweep = sub.add_parser("sweep", help="run scenarios x policies x seeds in parallel")
    sweep.add_argument("scenarios", nargs="+", help="scenario YAML files")
    sweep.add_argument("--policy", help="comma-separated policies (default: all four)")
    sweep.add_argument("--seeds", type=int, default=1, help="seeds per scenario and policy")
    sweep.add_argument("--jobs", type=int, default=0, help="parallel processes (0: one per core)")
    sweep.add_argument("--html", metavar="DIR", help="write the HTML report into DIR")

    e2e = sub.add_parser("e2e", help="run one scenario on a real cluster")
    e2e.add_argument("scenario", help="scenario YAML file")
    e2e.add_argument(
        "--cluster",
        default="auto",
        choices=["auto", "kind", "minikube", "existing", "local"],
        help="where to run (auto: kind when Docker is there, local otherwise)",
    )
    e2e.add_argument("--json", metavar="FILE", help="write the summary JSON here")
    e2e.add_argument("--html", metavar="DIR", help="write the HTML report into DIR")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sim":
        from harness.commands import run_sim

        return run_sim(args)
    if args.command == "sweep":
        from harness.commands import run_sweep

        return run_sweep(args)
    from harness.commands import run_e2e

    return run_e2e(args)


if __name__ == "__main__":
    sys.exit(main())
