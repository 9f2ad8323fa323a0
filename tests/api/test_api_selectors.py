"""Label selectors: matching as Kubernetes does, and the string the scale subresource shows."""

from __future__ import annotations

from typing import Any

import pytest

from controllers.api import (
    ElasticWorkerSpec,
    LabelSelector,
    format_rfc3339,
    parse_rfc3339,
    selector_matches,
    selector_to_string,
)

POD = {"app": "airflow-worker", "tier": "celery", "delete": "true"}


def _expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    req: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        req["values"] = list(values)
    return req


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (None, POD, False),
        ({}, POD, True),
        ({}, {}, True),
        ({"matchLabels": {"app": "airflow-worker"}}, POD, True),
        ({"matchLabels": {"app": "airflow-worker", "delete": "true"}}, POD, True),
        ({"matchLabels": {"app": "airflow-worker", "delete": "false"}}, POD, False),
        ({"matchLabels": {"delete": "true"}}, {"app": "airflow-worker"}, False),
        ({"matchExpressions": [_expr("tier", "In", "celery", "web")]}, POD, True),
        ({"matchExpressions": [_expr("tier", "In", "web")]}, POD, False),
        ({"matchExpressions": [_expr("zone", "In", "a")]}, POD, False),
        ({"matchExpressions": [_expr("tier", "NotIn", "web")]}, POD, True),
        ({"matchExpressions": [_expr("tier", "NotIn", "celery")]}, POD, False),
        # NotIn holds for a pod without the key, as in Kubernetes.
        ({"matchExpressions": [_expr("zone", "NotIn", "a")]}, POD, True),
        ({"matchExpressions": [_expr("delete", "Exists")]}, POD, True),
        ({"matchExpressions": [_expr("zone", "Exists")]}, POD, False),
        ({"matchExpressions": [_expr("zone", "DoesNotExist")]}, POD, True),
        ({"matchExpressions": [_expr("delete", "DoesNotExist")]}, POD, False),
        (
            {
                "matchLabels": {"app": "airflow-worker"},
                "matchExpressions": [_expr("tier", "In", "celery"), _expr("zone", "DoesNotExist")],
            },
            POD,
            True,
        ),
        (
            {
                "matchLabels": {"app": "airflow-worker"},
                "matchExpressions": [
                    _expr("tier", "In", "celery"),
                    _expr("delete", "DoesNotExist"),
                ],
            },
            POD,
            False,
        ),
    ],
)
def test_selector_matches(selector: Any, labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(selector, labels) is expected
    if selector is not None:
        assert selector_matches(LabelSelector.model_validate(selector), labels) is expected


@pytest.mark.parametrize(
    ("selector", "text"),
    [
        (None, ""),
        ({}, ""),
        ({"matchLabels": {"app": "airflow-worker"}}, "app=airflow-worker"),
        ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
        ({"matchExpressions": [_expr("c", "In", "e", "d")]}, "c in (d,e)"),
        ({"matchExpressions": [_expr("c", "NotIn", "x")]}, "c notin (x)"),
        ({"matchExpressions": [_expr("c", "Exists")]}, "c"),
        ({"matchExpressions": [_expr("c", "DoesNotExist")]}, "!c"),
        (
            {"matchLabels": {"a": "b"}, "matchExpressions": [_expr("c", "In", "d", "e")]},
            "a=b,c in (d,e)",
        ),
        (
            {"matchLabels": {"z": "1"}, "matchExpressions": [_expr("a", "Exists")]},
            "a,z=1",
        ),
    ],
)
def test_selector_to_string(selector: Any, text: str) -> None:
    assert selector_to_string(selector) == text


def test_pod_selector_falls_back_to_the_template_labels() -> None:
    spec = ElasticWorkerSpec.model_validate(
        {"maxReplicas": 2, "template": {"metadata": {"labels": {"app": "w"}}}}
    )
    assert spec.pod_selector().match_labels == {"app": "w"}
    explicit = ElasticWorkerSpec.model_validate(
        {
            "maxReplicas": 2,
            "selector": {"matchLabels": {"app": "w"}},
            "template": {"metadata": {"labels": {"app": "w", "v": "2"}}},
        }
    )
    assert selector_to_string(explicit.pod_selector()) == "app=w"


def test_rfc3339_round_trip() -> None:
    assert format_rfc3339(0) == "1970-01-01T00:00:00Z"
    assert parse_rfc3339(format_rfc3339(1714564800.7)) == 1714564800
    assert parse_rfc3339("2024-05-01T14:00:00+02:00") == parse_rfc3339("2024-05-01T12:00:00Z")
    with pytest.raises(ValueError, match="zone"):
        parse_rfc3339("2024-05-01T12:00:00")
