"""Speed and memory of the simulator, against the targets of the simulator issue.

    python bench/run.py day        # 24 h, <= 200 workers, >= 100k tasks: <= 15 s, <= 1 GB, one core
    python bench/run.py sweep      # 1000 runs of seed-safe-scale-in, --jobs 2: <= 180 s
    python bench/run.py baseline   # events/s of the simulator vs a bare SimPy model, same load
    python bench/run.py all

Targets are checked here and printed as PASS/FAIL lines; tests never time anything.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import simpy

ROOT = Path(__file__).resolve().parent.parent
DAY = ROOT / "bench" / "day.yaml"
SAFE = ROOT / "scenarios" / "seed-safe-scale-in.yaml"


def verdict(name: str, value: float, limit: float, unit: str) -> bool:
    ok = value <= limit
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {value:.2f} {unit} (target <= {limit:g} {unit})")
    return ok


def run_day() -> dict:
    """One simulated day in this process, pinned to one core."""
    from harness.scenario import load_scenario
    from harness.sim import simulate

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    scenario = load_scenario(DAY)
    started = time.perf_counter()
    result = simulate(scenario, tables=False)
    wall = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = result.summary
    return {
        "wall_seconds": wall,
        "rss_mb": rss_mb,
        "sim_events": s["sim_events"],
        "events_per_second": s["sim_events"] / wall,
        "tasks_completed": s["tasks_completed"],
        "max_replicas": s["max_replicas"],
        "busy_worker_terminations": s["busy_worker_terminations"],
    }


def bench_day() -> bool:
    r = run_day_subprocess()
    print(
        f"day: {r['tasks_completed']} tasks, peak {r['max_replicas']} workers, "
        f"{r['sim_events']} events, {r['events_per_second']:,.0f} events/s, "
        f"busy terminations {r['busy_worker_terminations']}"
    )
    ok = r["tasks_completed"] >= 100_000
    print(f"{'PASS' if ok else 'FAIL'}  day tasks: {r['tasks_completed']} (target >= 100000)")
    ok &= verdict("day wall", r["wall_seconds"], 15, "s")
    ok &= verdict("day RSS", r["rss_mb"], 1024, "MB")
    return ok


def bench_sweep() -> bool:
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "harness", "sweep", str(SAFE), "--policy", "drain"]
    cmd += ["--seeds", "1000", "--jobs", "2"]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return verdict("sweep of 1000 runs, --jobs 2", time.perf_counter() - started, 180, "s")


def bare_simpy(arrivals: list[float], services: list[float], servers: int) -> tuple[int, float]:
    """The same arrivals and service times through a bare SimPy M/G/c model."""
    env = simpy.Environment()
    slots = simpy.Resource(env, capacity=servers)
    events = 0

    def task(service: float):
        with slots.request() as req:
            yield req
            yield env.timeout(service)

    def source():
        last = 0.0
        for at, service in zip(arrivals, services, strict=True):
            yield env.timeout(at - last)
            last = at
            env.process(task(service))

    env.process(source())
    started = time.perf_counter()
    while True:
        try:
            env.step()
        except simpy.core.EmptySchedule:
            break
        events += 1
    return events, time.perf_counter() - started


def bench_baseline() -> bool:
    from harness.scenario import Poisson, load_scenario, sample_duration

    scenario = load_scenario(DAY)
    rng = random.Random(1)
    arrivals: list[float] = []
    for w in scenario.workload:
        assert isinstance(w, Poisson)
        t = w.poisson.start
        while True:
            t += rng.expovariate(w.poisson.rate)
            if t >= (w.poisson.end or scenario.duration):
                break
            arrivals.append(t)
    arrivals.sort()
    duration = scenario.dags["job"].tasks[0].duration
    services = [sample_duration(duration, rng) for _ in arrivals]
    events, wall = bare_simpy(arrivals, services, servers=400)
    bare_rate = events / wall
    r = run_day_subprocess()
    ratio = r["events_per_second"] / bare_rate
    print(f"bare SimPy: {events} events in {wall:.2f} s = {bare_rate:,.0f} events/s")
    print(
        f"simulator:  {r['sim_events']} events in {r['wall_seconds']:.2f} s = "
        f"{r['events_per_second']:,.0f} events/s"
    )
    print(f"ratio simulator / bare SimPy events per second: {ratio:.2f}")
    print(f"ratio of wall time for the same day: {r['wall_seconds'] / wall:.2f}")
    return True


def run_day_subprocess() -> dict:
    # A fresh interpreter, so the RSS is the day's alone.
    out = subprocess.run(
        [sys.executable, __file__, "_day"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("which", choices=["day", "sweep", "baseline", "all", "_day"])
    which = parser.parse_args().which
    if which == "_day":
        print(json.dumps(run_day()))
        return 0
    ok = True
    if which in ("day", "all"):
        ok &= bench_day()
    if which in ("baseline", "all"):
        ok &= bench_baseline()
    if which in ("sweep", "all"):
        ok &= bench_sweep()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
