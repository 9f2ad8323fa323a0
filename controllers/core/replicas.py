"""How many workers: the replica calculator (after the HPA's replica_calculator.go)."""

from __future__ import annotations

import math
from collections.abc import Iterable


def calculate_replicas(current: int, load: float, target: float, tolerance: float = 0.0) -> int:
    """`ceil(current * load / target)`, the prototype's formula and the HPA's.

    `current` is the number of workers the load was measured over. Pods that are still starting are
    not in it: they add capacity to come, and the caller compares the result with the count that
    includes them, so that a scale-out is not multiplied again on every poll while they start.
    Within `tolerance` of the target (|load/target - 1| <= tolerance) nothing changes.
    """
    if target <= 0:
        raise ValueError(f"target must be > 0, got {target}")
    if current <= 0:
        return 0
    ratio = load / target
    if abs(ratio - 1.0) <= tolerance:
        return current
    # Round before ceil: 2 * 90 / 60 is 3.0000000000000004 in floating point.
    return math.ceil(round(current * ratio, 9))


def clamp(n: int, low: int, high: int) -> int:
    return max(low, min(n, high))


def stabilized(
    recommendations: Iterable[tuple[float, int]], now: float, window: float
) -> int | None:
    """The highest recommendation of the last `window` seconds (HPA scale-down stabilisation)."""
    recent = [n for at, n in recommendations if now - at <= window]
    return max(recent) if recent else None


def remember(
    recommendations: tuple[tuple[float, int], ...], now: float, n: int, window: float
) -> tuple[tuple[float, int], ...]:
    """Add a recommendation and forget those older than the window."""
    return (*((at, r) for at, r in recommendations if now - at <= window), (now, n))
