from controllers.core.decision import AutoscalerMemory
from controllers.core.peers import decide_hpa, decide_keda
from controllers.core.types import Observation, SetReplicas
from tests.core.factories import DEMO, observe, pod


def test_hpa_tolerance_holds_near_target():
    pods = [pod(f"w-{i}") for i in range(4)]
    assert decide_hpa(DEMO, observe(pods, 4, 64), AutoscalerMemory()).actions == ()


def test_hpa_scale_down_stabilised_for_300s():
    pods = [pod(f"w-{i}", load=100) for i in range(4)]
    d = decide_hpa(DEMO, observe(pods, 4, 100, now=0), AutoscalerMemory())
    assert d.actions == (SetReplicas(5),)
    pods5 = [pod(f"w-{i}") for i in range(5)]
    d = decide_hpa(DEMO, observe(pods5, 5, 0, now=100), d.memory)
    assert d.actions == ()  # the recommendation of 7 (clamped 5 later) is still in the window
    d = decide_hpa(DEMO, observe(pods5, 5, 0, now=301), d.memory)
    assert d.actions == (SetReplicas(2),)


def test_keda_counts_running_plus_queued_over_concurrency():
    o = Observation(now=0, pods=(), replicas=2, running_tasks=4, queued_tasks=4)
    assert decide_keda(DEMO, o, AutoscalerMemory()).actions == (SetReplicas(4),)


def test_keda_without_metric_holds():
    o = Observation(now=0, pods=(), replicas=2)
    assert decide_keda(DEMO, o, AutoscalerMemory()).actions == ()
