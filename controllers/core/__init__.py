"""Pure decisions: replica counts, victim choice, the drain state machine, the workers plan.

No I/O, no clock, no Kubernetes client: every function takes the time and the observed state as
arguments and returns actions. The simulator (`harness.sim`) and the Kubernetes shell
(`controllers.kube`) both call these functions; neither decides anything itself.

Where to look:
- `replicas.py`   how many workers (the HPA-style replica calculator, stabilisation).
- `scale_in.py`   when scale-in may start (low load held for the back-off; unknown is never 0).
- `victims.py`    which worker leaves first.
- `drain.py`      the drain protocol: choose, cordon, verify, mark, undo (this project's policy).
- `workerset.py`  the ElasticWorker plan: pods to create and pods to delete.
- `seed.py`       the 2020 prototype, races included, for comparison.
- `peers.py`      the HPA and KEDA policies as their defaults behave, for comparison.
- `policies.py`   the registry that names the four policies.
"""
