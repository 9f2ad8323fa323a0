"""The custom metrics API's wire format (`custom.metrics.k8s.io/v1beta2`), both ways.

Shared by the adapter (which writes it) and `source.CustomMetricsApi` (which reads it): quantities
("60", "600m"), RFC 3339 timestamps, `MetricValueList`, `APIResourceList` and `Status` objects.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from controllers.core.types import Reading

GROUP = "custom.metrics.k8s.io"
VERSION = "v1beta2"
GROUP_VERSION = f"{GROUP}/{VERSION}"
BASE_PATH = f"/apis/{GROUP_VERSION}"

EW_GROUP = "elasticcluster.sarweshsuman.com"
EW_RESOURCE = f"elasticworkers.{EW_GROUP}"
EW_API_VERSION = f"{EW_GROUP}/v1"

# resource as it appears in the path -> (kind, apiVersion of the described object, metrics)
RESOURCES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "pods": ("Pod", "/v1", ("load", "active_tasks", "reserved_tasks")),
    EW_RESOURCE: ("ElasticWorker", EW_API_VERSION, ("total_cluster_load", "alive_workers")),
}

# --- quantities ----------------------------------------------------------------------------------

_SUFFIX = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$"
)


def format_quantity(value: float) -> str:
    """A Kubernetes quantity: an integer as is ("60"), anything else in milli-units ("600m")."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite quantity: {value}")
    if float(value).is_integer():
        return str(int(value))
    milli = round(value * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def parse_quantity(text: str) -> float:
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    number, exponent, suffix = match.groups()
    try:
        value = Decimal(number)
        if exponent:
            value *= Decimal(10) ** int(exponent[1:])
        value *= _SUFFIX[suffix or ""]
    except (InvalidOperation, KeyError) as error:
        raise ValueError(f"not a Kubernetes quantity: {text!r}") from error
    return float(value)


# --- time ----------------------------------------------------------------------------------------


def rfc3339(at: float) -> str:
    """Unix time -> RFC 3339 in UTC with milliseconds (`metav1.Time` accepts the fraction)."""
    moment = dt.datetime.fromtimestamp(at, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_rfc3339(text: str) -> float:
    return dt.datetime.fromisoformat(str(text).replace("z", "Z")).timestamp()


# --- objects -------------------------------------------------------------------------------------


def metric_value(
    resource: str,
    namespace: str,
    name: str,
    metric: str,
    reading: Reading,
    window_seconds: int | None,
    selector: dict[str, Any] | None = None,
) -> dict[str, Any]:
    kind, api_version, _ = RESOURCES[resource]
    item: dict[str, Any] = {
        "describedObject": {
            "kind": kind,
            "namespace": namespace,
            "name": name,
            "apiVersion": api_version,
        },
        "metric": {"name": metric},
        "timestamp": rfc3339(reading.at),
        "value": format_quantity(reading.value),
    }
    if selector is not None:
        item["metric"]["selector"] = selector
    if window_seconds is not None:
        item["windowSeconds"] = window_seconds
    return item


def metric_value_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "MetricValueList",
        "apiVersion": GROUP_VERSION,
        "metadata": {},
        "items": items,
    }


def reading_of(item: dict[str, Any]) -> Reading:
    """A MetricValue -> Reading (value, sample time); raises ValueError/KeyError when malformed."""
    return Reading(parse_quantity(item["value"]), parse_rfc3339(item["timestamp"]))


def resource_list() -> dict[str, Any]:
    resources = [
        {
            "name": f"{resource}/{metric}",
            "singularName": "",
            "namespaced": True,
            "kind": "MetricValueList",
            "verbs": ["get"],
        }
        for resource, (_, _, metrics) in RESOURCES.items()
        for metric in metrics
    ]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": resources,
    }


def api_group() -> dict[str, Any]:
    version = {"groupVersion": GROUP_VERSION, "version": VERSION}
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": GROUP,
        "versions": [version],
        "preferredVersion": version,
    }


def status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body
