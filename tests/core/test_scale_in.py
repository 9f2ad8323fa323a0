from controllers.core.scale_in import fresh_load, judge_load
from controllers.core.types import Reading


def test_low_load_must_hold_for_the_back_off():
    v = judge_load(10, None, now=0, below=42, back_off=30)
    assert (v.low_since, v.scale_in_due) == (0, False)
    v = judge_load(10, v.low_since, now=29, below=42, back_off=30)
    assert not v.scale_in_due
    v = judge_load(10, v.low_since, now=30, below=42, back_off=30)
    assert v.scale_in_due and v.low_since == 0


def test_middle_band_resets_the_timer():
    v = judge_load(50, 0, now=20, below=42, back_off=30)
    assert v.low_since is None and not v.scale_in_due


def test_unknown_neither_resets_nor_fires():
    v = judge_load(None, 0, now=100, below=42, back_off=30)
    assert v.low_since == 0 and not v.scale_in_due
    v = judge_load(None, None, now=100, below=42, back_off=30)
    assert v.low_since is None and not v.scale_in_due


def test_stale_or_missing_reading_is_unknown_not_zero():
    assert fresh_load(Reading(0, at=10), now=100, max_age=30) is None
    assert fresh_load(None, now=100, max_age=30) is None
    assert fresh_load(Reading(0, at=80), now=100, max_age=30) == 0
