"""The prototype's behaviour, flaws included (PROTOTYPE.md)."""

from dataclasses import replace

from controllers.core.decision import AutoscalerMemory
from controllers.core.seed import decide_seed, plan_seed_workers
from controllers.core.types import Mark, Observation, Phase, Reading, SetScale, Shutdown
from tests.core.factories import DEMO, DEMO_SET, pod


def obs(pods, actual, load, now=100.0, at=None):
    return Observation(
        now=now,
        pods=tuple(pods),
        replicas=actual,
        cluster_load=None if load is None else Reading(load, now if at is None else at),
        actual_replicas=actual,
    )


def test_pending_pods_multiply_scale_out_2_4_7():
    # Load over the two running workers stays 100 while the new ones start.
    d = decide_seed(DEMO, obs([], 2, 100), AutoscalerMemory())
    assert d.actions == (SetScale(2),)
    d = decide_seed(DEMO, obs([], 4, 100), AutoscalerMemory())
    assert d.actions == (SetScale(3),)  # ceil(4 * 100 / 60) = 7


def test_frozen_zero_is_believed_and_busy_snapshot_zero_is_shut_down():
    pods = [pod("a", load=0, load_at=0), pod("b", load=0, load_at=0), pod("c", load=100)]
    mem = decide_seed(DEMO, obs(pods, 3, 0, now=0, at=0), AutoscalerMemory()).memory
    d = decide_seed(DEMO, obs(pods, 3, 0, now=40, at=0), mem)
    # ceil(0 * 3 / 60) = 0, floored at min 2: one of the zero-load pods goes, however old the zero.
    assert d.actions == (Shutdown(("a",)), Mark("a"), SetScale(-1))


def test_scale_in_threshold_is_int_of_seventy_percent():
    pods = [pod("a"), pod("b"), pod("c")]
    d = decide_seed(DEMO, obs(pods, 3, 42), AutoscalerMemory())
    assert d.memory.low_since == 100  # 42 <= int(0.7 * 60)
    d = decide_seed(DEMO, obs(pods, 3, 43), d.memory)
    assert d.memory.low_since is None


def test_seed_workerset_failed_pods_pile_up():
    pods = [pod("a"), pod("b"), pod("dead", phase=Phase.FAILED)]
    plan = plan_seed_workers(DEMO_SET, pods, actual_annotation=3, now=1000)
    assert len(plan.create) == 1 and plan.actual_replicas == 4
    assert plan.create[0].startswith("w-replica-0-1000")


def test_seed_selector_drops_what_it_cannot_delete():
    spec = replace(DEMO_SET, scale=-2)
    pods = [pod("a"), pod("b"), pod("c", labels={"delete": "true"}), pod("d")]
    plan = plan_seed_workers(spec, pods, actual_annotation=4, now=0)
    assert plan.delete == ("c",)
