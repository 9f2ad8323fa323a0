from controllers.core.types import DrainStep, Phase
from controllers.core.victims import (
    cache_order,
    drain_candidates,
    is_idle,
    replicaset_order,
    statefulset_order,
    undo_order,
)
from tests.core.factories import pod


def test_idle_needs_a_fresh_zero():
    assert is_idle(pod("a", load=0, load_at=95), now=100, max_age=30)
    assert not is_idle(pod("a", load=0, load_at=50), now=100, max_age=30)
    assert not is_idle(pod("a", load=None), now=100, max_age=30)
    assert not is_idle(pod("a", load=50), now=100, max_age=30)


def test_candidates_pending_then_least_recently_busy():
    pods = [
        pod("busy", load=100),
        pod("recent", load=0, last_busy=90),
        pod("never", load=0, last_busy=None),
        pod("old", load=0, last_busy=10),
        pod("starting", phase=Phase.PENDING, load=None),
        pod("draining", load=0, step=DrainStep.CORDONED),
    ]
    names = [p.name for p in drain_candidates(pods, now=100, max_age=30)]
    assert names == ["starting", "never", "old", "recent"]


def test_undo_order_least_far_along_first():
    pods = [
        pod("done", step=DrainStep.CORDONED, report=(0, 0, 1)),
        pod("busy", step=DrainStep.CORDONED, report=(1, 0, 1)),
        pod("asked", step=DrainStep.CORDON_REQUESTED),
    ]
    assert [p.name for p in undo_order(pods)] == ["asked", "busy", "done"]


def test_peer_rankings():
    pods = [
        pod("a", created=1, index=0),
        pod("b", created=3, index=2),
        pod("c", created=2, index=1),
    ]
    assert [p.name for p in replicaset_order(pods)] == ["b", "c", "a"]
    assert [p.name for p in statefulset_order(pods)] == ["b", "c", "a"]
    assert [p.name for p in cache_order(pods)] == ["c", "b", "a"]
