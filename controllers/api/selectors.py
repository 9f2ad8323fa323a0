"""Kubernetes label selectors: the model, matching, and the string form.

Semantics follow `metav1.LabelSelectorAsSelector`: every requirement must hold, an empty selector
matches every pod, and no selector at all (None) matches none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from controllers.api.base import ApiModel

SelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist"]


class LabelSelectorRequirement(ApiModel):
    """One `matchExpressions` entry: `key operator values`."""

    key: str = Field(min_length=1)
    operator: SelectorOperator
    values: list[str] | None = None

    @field_validator("values")
    @classmethod
    def _values_fit_operator(
        cls, values: list[str] | None, info: ValidationInfo
    ) -> list[str] | None:
        operator = info.data.get("operator")
        if operator in ("In", "NotIn") and not values:
            raise ValueError(f"must not be empty for operator {operator}")
        if operator in ("Exists", "DoesNotExist") and values:
            raise ValueError(f"must be empty for operator {operator}")
        return values


class LabelSelector(ApiModel):
    """`matchLabels` and `matchExpressions`, ANDed."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)

    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions


SelectorInput = LabelSelector | Mapping[str, Any] | None


def _as_selector(selector: SelectorInput) -> LabelSelector | None:
    if selector is None or isinstance(selector, LabelSelector):
        return selector
    return LabelSelector.model_validate(dict(selector))


def _requirement_holds(req: LabelSelectorRequirement, labels: Mapping[str, str]) -> bool:
    present = req.key in labels
    if req.operator == "Exists":
        return present
    if req.operator == "DoesNotExist":
        return not present
    inside = present and labels[req.key] in (req.values or [])
    return inside if req.operator == "In" else not inside


def selector_matches(selector: SelectorInput, labels: Mapping[str, str]) -> bool:
    """Whether a pod with `labels` is selected; None selects nothing, `{}` everything."""
    sel = _as_selector(selector)
    if sel is None:
        return False
    if any(labels.get(key) != value for key, value in sel.match_labels.items()):
        return False
    return all(_requirement_holds(req, labels) for req in sel.match_expressions)


def selector_to_string(selector: SelectorInput) -> str:
    """The `a=b,c in (d,e)` form the scale subresource publishes in `status.selector`.

    Requirements are sorted by key and set values sorted, as apimachinery prints them, so that the
    string is stable across reconciles and does not cause needless status writes. None and `{}`
    both give "" (callers that need "nothing" must not publish a selector at all).
    """
    sel = _as_selector(selector)
    if sel is None:
        return ""
    parts: list[tuple[str, str]] = [(k, f"{k}={v}") for k, v in sel.match_labels.items()]
    for req in sel.match_expressions:
        values = ",".join(sorted(set(req.values or [])))
        text = {
            "In": f"{req.key} in ({values})",
            "NotIn": f"{req.key} notin ({values})",
            "Exists": req.key,
            "DoesNotExist": f"!{req.key}",
        }[req.operator]
        parts.append((req.key, text))
    parts.sort(key=lambda part: part[0])
    return ",".join(text for _, text in parts)
