"""The ElasticWorker plan."""

from dataclasses import replace

from controllers.core.types import Phase
from controllers.core.workerset import plan_workers, resolve_replicas
from tests.core.factories import DEMO_SET, pod

MARK = {"delete": "true"}


def test_keeps_min_pods_from_nothing():
    plan = plan_workers(DEMO_SET, [])
    assert plan.replicas == 2
    assert [p.name for p in plan.create] == ["w-0", "w-1"]
    assert plan.next_index == 2


def test_scale_deltas_accumulate_into_replicas():
    spec = replace(DEMO_SET, replicas=3, scale=1)
    assert resolve_replicas(spec) == 4
    assert plan_workers(spec, []).consumed_scale == 1


def test_replicas_clamped_to_min_and_max():
    assert resolve_replicas(replace(DEMO_SET, replicas=9)) == 5
    assert resolve_replicas(replace(DEMO_SET, replicas=3, scale=-7)) == 2


def test_fallback_is_last_desired_then_min():
    assert resolve_replicas(DEMO_SET, fallback=4) == 4
    assert resolve_replicas(DEMO_SET) == 2


def test_selector_policy_deletes_only_marked_and_replaces_them_if_needed():
    pods = [pod("w-0", index=0), pod("w-1", index=1), pod("w-2", index=2, labels=MARK)]
    plan = plan_workers(replace(DEMO_SET, replicas=2), pods)
    assert plan.delete == ("w-2",) and plan.create == ()
    plan = plan_workers(replace(DEMO_SET, replicas=3), pods)
    assert plan.delete == ("w-2",) and [p.name for p in plan.create] == ["w-3"]


def test_selector_policy_waits_for_marks_instead_of_deleting():
    pods = [pod(f"w-{i}", index=i) for i in range(4)]
    plan = plan_workers(replace(DEMO_SET, replicas=2), pods)
    assert plan.delete == () and plan.waiting == 2


def test_immediate_deletes_pending_first_then_newest():
    spec = replace(DEMO_SET, policy="immediate", replicas=2)
    pods = [
        pod("w-0", created=0, index=0),
        pod("w-1", created=5, index=1),
        pod("w-2", created=9, index=2),
        pod("w-3", created=1, index=3, phase=Phase.PENDING),
    ]
    assert plan_workers(spec, pods).delete == ("w-3", "w-2")


def test_disabled_never_deletes():
    spec = replace(DEMO_SET, policy="disabled", replicas=2)
    pods = [pod(f"w-{i}", index=i, labels=MARK) for i in range(4)]
    plan = plan_workers(spec, pods)
    assert plan.delete == () and plan.waiting == 2


def test_failed_pods_are_replaced_and_cleaned_up():
    pods = [pod("w-0", index=0), pod("w-1", index=1, phase=Phase.FAILED)]
    plan = plan_workers(replace(DEMO_SET, replicas=2), pods)
    assert plan.cleanup == ("w-1",)
    assert [p.name for p in plan.create] == ["w-2"]


def test_terminating_pods_do_not_count_and_names_never_reused():
    pods = [pod("w-0", index=0), pod("w-7", index=7, deleting=True)]
    plan = plan_workers(replace(DEMO_SET, replicas=2), pods, next_index=3)
    assert [p.name for p in plan.create] == ["w-8"]
    assert plan.delete == ()


def test_invalid_spec_does_not_crash():
    spec = replace(DEMO_SET, min_replicas=6, max_replicas=2, replicas=-3)
    plan = plan_workers(spec, [])
    assert 0 <= plan.replicas <= 6
