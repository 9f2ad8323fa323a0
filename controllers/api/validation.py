"""Validation of manifests into models, with every error named by its camelCase field path.

`validate_*` first lets pydantic check types, ranges and unknown keys, then applies the rules that
relate two fields. Both passes always run and all errors are reported together, so a scenario
author fixes a file in one round. Paths follow Kubernetes' `field.Path` form:
`spec.scaleInPolicy.selector.matchExpressions[0].values`, `spec.template.metadata.labels[app]`.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from controllers.api.models import (
    ElasticWorker,
    ElasticWorkerAutoscaler,
    ElasticWorkerSpec,
)
from controllers.api.selectors import LabelSelector, selector_matches

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InvalidResource(ValueError):
    """A manifest that does not validate; `errors` holds every problem found."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors: list[FieldError] = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


# --- paths -----------------------------------------------------------------------------------


def _strip_wrappers(annotation: Any) -> Any:
    """The type inside Annotated[...] and X | None."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _model_field(model: type[BaseModel], name: str) -> tuple[str, Any] | None:
    """(wire name, annotation) of the field called `name` in Python or on the wire."""
    for py_name, info in model.model_fields.items():
        if name in (py_name, info.alias):
            return info.alias or py_name, info.annotation
    return None


def _wire_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or py_name for py_name, info in model.model_fields.items()]


def _walk(root: type[BaseModel], loc: Sequence[int | str]) -> tuple[str, Any]:
    """The dotted camelCase path of a pydantic `loc`, and the type found at its end."""
    path = ""
    current: Any = root
    for segment in loc:
        current = _strip_wrappers(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            found = _model_field(current, str(segment))
            name, current = found if found else (str(segment), None)
            path = f"{path}.{name}" if path else name
        elif origin in (list, tuple, Sequence) or isinstance(segment, int):
            args = typing.get_args(current)
            current = args[0] if args else None
            path += f"[{segment}]"
        elif origin in (dict, Mapping):
            args = typing.get_args(current)
            current = args[1] if len(args) == 2 else None
            path += f"[{segment}]"
        else:
            # Past anything modelled (e.g. inside the free-form pod spec): keep the raw segments.
            current = None
            path = f"{path}.{segment}" if path else str(segment)
    return path, current


# --- pydantic errors -------------------------------------------------------------------------

_TYPE_NAMES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "a boolean",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "a list",
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(error: Mapping[str, Any], parent: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = f" (got {_shown(error.get('input'))})"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        message = "unknown field"
        if isinstance(parent, type) and issubclass(parent, BaseModel):
            close = difflib.get_close_matches(str(error["loc"][-1]), _wire_names(parent), n=1)
            if close:
                message += f" (did you mean {close[0]!r}?)"
        return message
    if kind in _TYPE_NAMES:
        return f"must be {_TYPE_NAMES[kind]}{got}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        if "," not in expected:
            return f"must be {expected}{got}"
        return f"must be one of {expected}{got}"
    bounds = {
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        symbol, key = bounds[kind]
        return f"must be {symbol} {ctx.get(key)}{got}"
    if kind in ("string_too_short", "too_short"):
        return f"must not be empty{got}"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    text = str(error.get("msg", kind))
    return text[:1].lower() + text[1:] + got


def _pydantic_errors(root: type[BaseModel], exc: ValidationError) -> list[FieldError]:
    errors = []
    for error in exc.errors():
        loc = error["loc"]
        path, _ = _walk(root, loc)
        _, parent = _walk(root, loc[:-1]) if loc else ("", root)
        errors.append(FieldError(path or "(object)", _message(error, _strip_wrappers(parent))))
    return errors


# --- rules across fields ---------------------------------------------------------------------
# They read the raw manifest because pydantic builds no model when any field is wrong, and an
# error there must not hide the cross-field ones. A part with a wrong type is skipped: pydantic
# has reported it already.


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _int_or_default(spec: Mapping[str, Any], key: str, default: int | None) -> int | None:
    value = spec.get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _parsed(kind: Any, raw: Any) -> Any:
    try:
        return TypeAdapter(kind).validate_python(raw)
    except ValidationError:
        return None


def _elastic_worker_rules(obj: Mapping[str, Any]) -> list[FieldError]:
    spec = _get(obj, "spec")
    if not isinstance(spec, Mapping):
        return []
    errors: list[FieldError] = []
    default_min = ElasticWorkerSpec.model_fields["min_replicas"].default
    low = _int_or_default(spec, "minReplicas", default_min)
    high = _int_or_default(spec, "maxReplicas", None)
    if low is not None and high is not None and low > high:
        errors.append(
            FieldError("spec.minReplicas", f"must be <= spec.maxReplicas ({low} > {high})")
        )

    policy = _get(spec, "scaleInPolicy")
    if _get(policy, "name") == "selector":
        raw = _get(policy, "selector")
        if raw is None:
            errors.append(
                FieldError("spec.scaleInPolicy.selector", "is required when name is 'selector'")
            )
        else:
            parsed = _parsed(LabelSelector, raw)
            if parsed is not None and parsed.is_empty():
                errors.append(
                    FieldError(
                        "spec.scaleInPolicy.selector",
                        "must not be empty when name is 'selector' (it would match every pod)",
                    )
                )

    raw_selector = spec.get("selector")
    selector = _parsed(LabelSelector, raw_selector) if raw_selector is not None else None
    labels = _parsed(dict[str, str], _get(spec, "template", "metadata", "labels") or {})
    if selector is not None and labels is not None and not selector_matches(selector, labels):
        errors.append(
            FieldError(
                "spec.selector",
                f"does not match spec.template.metadata.labels (labels {labels})",
            )
        )
    return errors


# --- entry points ----------------------------------------------------------------------------


def _validate(
    root: type[M],
    obj: Any,
    rules: Callable[[Mapping[str, Any]], list[FieldError]] | None = None,
) -> M:
    errors: list[FieldError] = []
    model: M | None = None
    try:
        model = root.model_validate(obj)
    except ValidationError as exc:
        errors.extend(_pydantic_errors(root, exc))
    if rules is not None:
        # A valid model is read back in wire form, defaults filled, so the rules also hold for
        # input written with the Python field names; otherwise the raw input is all there is.
        view = model.model_dump(by_alias=True) if model is not None else obj
        if isinstance(view, Mapping):
            errors.extend(e for e in rules(view) if e not in errors)
    if errors or model is None:
        raise InvalidResource(errors)
    return model


def validate_elastic_worker(obj: Mapping[str, Any]) -> ElasticWorker:
    """An ElasticWorker from a manifest dict, defaults filled; raises InvalidResource."""
    return _validate(ElasticWorker, obj, _elastic_worker_rules)


def validate_elastic_worker_autoscaler(obj: Mapping[str, Any]) -> ElasticWorkerAutoscaler:
    """An ElasticWorkerAutoscaler from a manifest dict, defaults filled; raises InvalidResource."""
    return _validate(ElasticWorkerAutoscaler, obj)
