"""The drain hook: cordon, verify and restore Celery workers by pod name.

- `controllers.hook.server` / `python -m controllers.hook`: the HTTP service the
  autoscaler calls (`POST /shutdownpods`, `/inspectpods`, `/restorepods`).
- `controllers.hook.drain.CeleryDrainer`: the Celery remote-control calls.
- `controllers.hook.client.HookClient`: the autoscaler's side (stdlib only).
- `controllers.hook.naming.celery_nodename`: pod `P` is Celery node `celery@P`.

Importing this package does not import Celery.
"""

from controllers.hook.client import HookClient, HookError, PodReply
from controllers.hook.naming import celery_nodename, pod_name

__all__ = ["HookClient", "HookError", "PodReply", "celery_nodename", "pod_name"]
