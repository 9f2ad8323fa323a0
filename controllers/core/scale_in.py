"""When scale-in may start: load below 70 % of the target, held for the back-off."""

from __future__ import annotations

from dataclasses import dataclass

from controllers.core.types import Reading


@dataclass(frozen=True)
class LoadVerdict:
    """What one reading says about the scale-in timer."""

    low_since: float | None
    scale_in_due: bool


def fresh_load(reading: Reading | None, now: float, max_age: float) -> float | None:
    """The load value if it is fresh; `None` (unknown) if missing or older than `max_age`.

    Unknown is never 0: the prototype's frozen 0 let busy workers be shut down.
    """
    if reading is None or not reading.fresh(now, max_age):
        return None
    return reading.value


def judge_load(
    load: float | None, low_since: float | None, now: float, below: float, back_off: float
) -> LoadVerdict:
    """Advance the low-load timer by one reading.

    A missing or stale reading (`load is None`) neither starts, resets nor fires the timer.
    A reading at or above `below` resets it.
    """
    if load is None:
        return LoadVerdict(low_since, False)
    if load >= below:
        return LoadVerdict(None, False)
    started = now if low_since is None else low_since
    return LoadVerdict(started, now - started >= back_off)
