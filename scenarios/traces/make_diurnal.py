"""Write diurnal.csv: a day's DAG triggers compressed into two hours.

A non-homogeneous Poisson process (by thinning) whose rate follows one sinusoidal day: a quiet
night, a morning ramp, an afternoon peak five times the night's rate. Fixed seed, so the trace is
reproducible: `python3 scenarios/traces/make_diurnal.py`.
"""

import csv
import math
import random
from pathlib import Path

DAY = 7200.0  # one compressed day, seconds
END = 6600.0  # no trigger in the last ten minutes, so the day's work can finish
MEAN_RATE = 0.12  # triggers per second, averaged over the day
SWING = 0.65  # peak = mean * (1 + swing), night = mean * (1 - swing)


def rate(t: float) -> float:
    return MEAN_RATE * (1 - SWING * math.cos(2 * math.pi * t / DAY))


def triggers(rng: random.Random) -> list[float]:
    peak = MEAN_RATE * (1 + SWING)
    t, times = 0.0, []
    while True:
        t += rng.expovariate(peak)
        if t >= END:
            return times
        if rng.random() < rate(t) / peak:
            times.append(round(t, 3))


if __name__ == "__main__":
    out = Path(__file__).with_name("diurnal.csv")
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["at"])
        writer.writerows([t] for t in triggers(random.Random(20200101)))
