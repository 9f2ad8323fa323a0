"""The SimPy model of the cluster, in which `controllers.core` decides (DESIGN.md, "harness/sim").

Modules, one concern each:
- `airflow.py`      DAG runs arrive; the scheduler queues their tasks in order and retries.
- `broker.py`       RabbitMQ: one FIFO queue, prefetch, early or late ack, requeue.
- `worker.py`       a worker pod (Pending -> Running -> gone or Failed) and its Celery worker.
- `metrics.py`      the collector: per-pod and cluster load readings with their sample times.
- `controllers.py`  the autoscaler and ElasticWorker loops, and the hook, calling the core.
- `faults.py`       the scenario's faults.
- `cluster.py`      wiring, the recorded tables, and `simulate()`.
"""

from harness.sim.cluster import Cluster, simulate

__all__ = ["Cluster", "simulate"]
