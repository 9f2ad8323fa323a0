"""The Kubernetes shell around `controllers.core`: watches, writes, status, leader election.

It decides nothing: every count, victim and drain step comes from `controllers.core`; this
package reads objects, converts them, calls the core, and carries the answers out.

- `views.py`       pure conversions: resources -> core specs, pods -> `PodView`, plans -> pod
                   manifests and patches, conditions and status entries.
- `client.py`      the few API calls made, as dicts, each with a timeout.
- `workers.py`     the ElasticWorker controller (one reconcile).
- `autoscaler.py`  the ElasticWorkerAutoscaler controller (one sync) and the drain actions.
- `hook.py`        the drain hook as the autoscaler calls it.
- `workqueue.py`   keys, coalesced, one worker per key, timed re-adds.
- `leader.py`      leader election with a coordination.k8s.io/v1 Lease.
- `operator.py`    the process: kopf watches -> work queue -> controllers, only while leading.

Run it with `python -m controllers` (see `controllers/__main__.py`).
"""
