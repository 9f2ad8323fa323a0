import pytest

from controllers.core.replicas import calculate_replicas, clamp, remember, stabilized


def test_demo_two_busy_workers_become_four():
    # min 2, max 5, target 60: two workers at load 100 -> ceil(2 * 100 / 60) = 4
    assert calculate_replicas(2, 100, 60) == 4


@pytest.mark.parametrize(
    ("current", "load", "target", "want"),
    [(4, 100, 60, 7), (2, 90, 60, 3), (5, 0, 60, 0), (3, 60, 60, 3), (1, 61, 60, 2)],
)
def test_formula(current, load, target, want):
    assert calculate_replicas(current, load, target) == want


def test_tolerance_keeps_current():
    assert calculate_replicas(4, 65, 60, tolerance=0.1) == 4
    assert calculate_replicas(4, 70, 60, tolerance=0.1) == 5


def test_no_workers_no_replicas_and_bad_target_is_an_error():
    assert calculate_replicas(0, 100, 60) == 0
    with pytest.raises(ValueError, match="target"):
        calculate_replicas(2, 50, 0)


def test_clamp():
    assert clamp(7, 2, 5) == 5
    assert clamp(0, 2, 5) == 2


def test_stabilisation_window_takes_highest_recent():
    recs = ()
    recs = remember(recs, 0, 5, 300)
    recs = remember(recs, 100, 2, 300)
    assert stabilized(recs, 100, 300) == 5
    recs = remember(recs, 301, 2, 300)
    assert stabilized(recs, 301, 300) == 2
    assert len(recs) == 2  # the one from t=0 is forgotten
