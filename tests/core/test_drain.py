"""The drain protocol decisions (DESIGN.md), with the prototype's demo numbers."""

from controllers.core.decision import AutoscalerMemory
from controllers.core.drain import decide_drain
from controllers.core.types import (
    Cordon,
    DrainStep,
    Mark,
    Phase,
    SetReplicas,
    Uncordon,
    Verify,
)
from tests.core.factories import DEMO, observe, pod

CORDONED = DrainStep.CORDONED


def two_busy():
    return [pod("w-0", load=100), pod("w-1", load=100)]


def test_scale_out_two_busy_workers_to_four():
    d = decide_drain(DEMO, observe(two_busy(), 2, 100), AutoscalerMemory())
    assert d.actions == (SetReplicas(4),)


def test_pending_pods_are_capacity_to_come_no_multiplying():
    # Next poll: two new pods still starting, load still 100 over the two running ones.
    pods = [
        *two_busy(),
        pod("w-2", phase=Phase.PENDING, load=None),
        pod("w-3", phase=Phase.PENDING),
    ]
    d = decide_drain(DEMO, observe(pods, 4, 100), AutoscalerMemory())
    assert d.actions == () and d.replicas == 4


def test_scale_out_clamped_at_max():
    pods = [pod(f"w-{i}", load=100) for i in range(4)]
    d = decide_drain(DEMO, observe(pods, 4, 100), AutoscalerMemory())
    assert d.actions == (SetReplicas(5),)


def test_scale_in_waits_for_the_back_off_then_cordons_idle_only():
    pods = [pod("w-0", load=100, last_busy=99), pod("w-1", load=0), pod("w-2", load=0)]
    mem = AutoscalerMemory()
    d = decide_drain(DEMO, observe(pods, 3, 10, now=100), mem)
    assert d.actions == () and d.memory.low_since == 100
    d = decide_drain(DEMO, observe(pods, 3, 10, now=129), d.memory)
    assert d.actions == ()
    d = decide_drain(DEMO, observe(pods, 3, 10, now=130, at=130), d.memory)
    # ceil(3 * 10 / 60) = 1 -> clamped to min 2: one worker goes, an idle one.
    assert d.replicas == 2
    assert SetReplicas(2) in d.actions
    cordons = [a for a in d.actions if isinstance(a, Cordon)]
    assert len(cordons) == 1 and cordons[0].pod in ("w-1", "w-2")


def test_no_idle_worker_no_cordon():
    pods = [pod("w-0", load=50), pod("w-1", load=50), pod("w-2", load=50)]
    d = decide_drain(DEMO, observe(pods, 2, 20, now=200), AutoscalerMemory())
    assert not any(isinstance(a, Cordon) for a in d.actions)


def test_stale_pod_load_is_not_idle():
    pods = [
        pod("w-0", load=0, load_at=0),
        pod("w-1", load=0, load_at=0),
        pod("w-2", load=0, load_at=0),
    ]
    d = decide_drain(DEMO, observe(pods, 2, 0, now=200), AutoscalerMemory(low_since=0))
    assert not any(isinstance(a, Cordon) for a in d.actions)


def test_stale_cluster_load_holds_everything():
    pods = [pod("w-0"), pod("w-1"), pod("w-2")]
    d = decide_drain(DEMO, observe(pods, 3, 0, now=500, at=400), AutoscalerMemory(low_since=0))
    assert d.replicas == 3 and d.actions == () and d.load is None
    assert d.memory.low_since == 0  # unknown resets nothing


def test_verified_idle_worker_is_marked():
    pods = [pod("w-0"), pod("w-1"), pod("w-2", step=CORDONED, since=90, report=(0, 0, 90))]
    d = decide_drain(DEMO, observe(pods, 2, 0), AutoscalerMemory())
    assert Mark("w-2") in d.actions


def test_reserved_task_after_cordon_blocks_the_mark():
    # Celery 2564: a prefetched message stays on the worker after cancel_consumer.
    pods = [pod("w-0"), pod("w-1"), pod("w-2", step=CORDONED, since=90, report=(0, 1, 91))]
    d = decide_drain(DEMO, observe(pods, 2, 0), AutoscalerMemory())
    assert Mark("w-2") not in d.actions and Verify("w-2") in d.actions


def test_report_from_before_the_cordon_does_not_count():
    pods = [pod("w-0"), pod("w-1"), pod("w-2", step=CORDONED, since=90, report=(0, 0, 89))]
    d = decide_drain(DEMO, observe(pods, 2, 0), AutoscalerMemory())
    assert Mark("w-2") not in d.actions and Verify("w-2") in d.actions


def test_cordon_requested_is_asked_again_after_a_restart():
    pods = [pod("w-0"), pod("w-1"), pod("w-2", step=DrainStep.CORDON_REQUESTED, since=95)]
    d = decide_drain(DEMO, observe(pods, 2, 0), AutoscalerMemory())
    assert Cordon("w-2") in d.actions


def test_load_rises_cordoned_worker_is_put_back_not_a_new_pod():
    pods = [
        pod("w-0", load=100),
        pod("w-1", load=100),
        pod("w-2", load=0, step=CORDONED, since=90, report=(1, 0, 91)),
    ]
    # desired was 2 (w-2 draining); load 100 over 3 running -> 5
    d = decide_drain(DEMO, observe(pods, 2, 100), AutoscalerMemory())
    assert Uncordon("w-2") in d.actions
    assert SetReplicas(5) in d.actions
    assert not any(isinstance(a, Mark) for a in d.actions)


def test_marked_pods_are_not_members():
    pods = [pod("w-0"), pod("w-1"), pod("w-2", step=DrainStep.MARKED, labels={"delete": "true"})]
    d = decide_drain(DEMO, observe(pods, 2, 0), AutoscalerMemory())
    assert not any(isinstance(a, (Cordon, Uncordon, Mark, Verify)) for a in d.actions)


def test_lowered_max_drains_the_surplus_safely():
    spec = DEMO.__class__(**{**DEMO.__dict__, "max_replicas": 3})
    pods = [pod(f"w-{i}", load=0, created=i) for i in range(5)]
    d = decide_drain(spec, observe(pods, 5, 50), AutoscalerMemory())
    assert SetReplicas(3) in d.actions
    assert sum(isinstance(a, Cordon) for a in d.actions) == 2


def test_pending_pods_are_drained_first():
    pods = [pod("w-0"), pod("w-1"), pod("w-2"), pod("w-3", phase=Phase.PENDING, load=None)]
    d = decide_drain(DEMO, observe(pods, 4, 0, now=200), AutoscalerMemory(low_since=100))
    assert next(a for a in d.actions if isinstance(a, Cordon)) == Cordon("w-3")


def test_tasks_finishing_on_draining_workers_do_not_scale_back_out():
    # After a scale-in to 4: 4 serving workers, 5 cordoned ones finishing their last tasks.
    # The cluster load (28 over 9 workers) counts those tasks; they need no new capacity.
    serving = [pod(f"s-{i}", load=25) for i in range(4)]
    draining = [
        pod(f"d-{i}", load=30, step=CORDONED, since=90, report=(1, 0, 91)) for i in range(5)
    ]
    d = decide_drain(DEMO, observe(serving + draining, 4, 28), AutoscalerMemory())
    assert not any(isinstance(a, (SetReplicas, Uncordon)) for a in d.actions)
    assert d.replicas == 4


def test_serving_workers_full_while_others_drain_scales_out():
    serving = [pod(f"s-{i}", load=100) for i in range(2)]
    draining = [pod("d-0", load=0, step=CORDONED, since=90, report=(0, 1, 91))]
    # 200 busy over 3 workers; the draining one holds none of it.
    d = decide_drain(DEMO, observe(serving + draining, 2, 200 / 3), AutoscalerMemory())
    assert SetReplicas(4) in d.actions and Uncordon("d-0") in d.actions
