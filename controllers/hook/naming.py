"""Pod name <-> Celery node name: the one place that knows the convention.

The worker of pod P runs as Celery node `celery@P`: started with
`celery worker --hostname celery@P`, or with Airflow's
`airflow celery worker --celery-hostname P` (Airflow passes it on as Celery's
`--hostname`, and Celery prefixes a name without `@` with `celery@`). Pod
hostnames are pod names in Kubernetes (for bare pods and StatefulSets), so the
chart's default `celery@$(hostname)` gives the same node name.
"""

from __future__ import annotations

import re

NODE_PREFIX = "celery@"
# A DNS-1123 subdomain (Kubernetes object names), also accepting a full
# `name@host` Celery node name; no spaces, no wildcards.
_VALID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._@-]{0,251}[A-Za-z0-9])?$")


def celery_nodename(pod: str) -> str:
    """The Celery node name of the worker running in pod `pod` (`celery@<pod>`).

    A name that already contains `@` is taken to be a node name and kept.
    """
    return pod if "@" in pod else f"{NODE_PREFIX}{pod}"


def pod_name(nodename: str) -> str:
    """The pod of Celery node `nodename` (the part after `@`)."""
    return nodename.split("@", 1)[1] if "@" in nodename else nodename


def valid_pod_name(name: object) -> bool:
    return isinstance(name, str) and _VALID.fullmatch(name) is not None and name.count("@") <= 1
