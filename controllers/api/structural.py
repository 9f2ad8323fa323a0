"""Pydantic JSON schema -> the structural OpenAPI v3 schema a CRD needs.

Kubernetes accepts only structural schemas: every node typed, no `$ref`, no null branches, no
`additionalProperties` next to `properties`. Pydantic emits JSON Schema 2020-12 instead, so this
module inlines definitions, unwraps `X | None`, and rewrites the few keywords that differ.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

PRESERVE = "x-kubernetes-preserve-unknown-fields"

# Keywords pydantic emits that mean nothing to the API server, or that we rewrite below.
_DROPPED = {"title", "$defs", "const", "exclusiveMinimum", "exclusiveMaximum"}


class _WithFactoryDefaults(GenerateJsonSchema):
    """Also emits the defaults made by `default_factory`, which pydantic leaves out."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()  # type: ignore[call-arg]
        return super().get_default_value(schema)


def json_schema(model: type[BaseModel]) -> JsonSchemaValue:
    """The model's pydantic JSON schema, camelCase names, factory defaults included."""
    return model.model_json_schema(by_alias=True, schema_generator=_WithFactoryDefaults)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline `$ref`, single `allOf`, and `anyOf: [X, null]`; keys on `node` win."""
    node = dict(node)
    if "$ref" in node:
        name = node.pop("$ref").rsplit("/", 1)[-1]
        node = {**_resolve(defs[name], defs), **node}
    if "allOf" in node and len(node["allOf"]) == 1:
        node = {**_resolve(node.pop("allOf")[0], defs), **node}
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"a CRD schema cannot express a union of {branches}")
        node = {**_resolve(branches[0], defs), **node}
    return node


def _structural_default(node: dict[str, Any], default: Any) -> tuple[bool, Any]:
    """Whether to emit a default, and which.

    A sub-object gets `{}` rather than its full default: the API server then fills its fields
    from their own defaults, so there is one source per value. Empty maps and lists and None
    are left out so that stored objects stay as small as the manifest.
    """
    if default is None:
        return False, None
    if node.get("type") == "object" and "properties" in node:
        return True, {}
    if isinstance(default, dict | list) and not default:
        return False, None
    return True, copy.deepcopy(default)


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or key == "default":
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs)
        elif key == "additionalProperties":
            if isinstance(value, dict) and value:
                out[key] = _convert(value, defs)
            elif value is True or value == {}:
                out[PRESERVE] = True
            # `false` (extra="forbid") is left out: pruning already drops unknown keys.
        else:
            out[key] = copy.deepcopy(value)

    if "const" in node:
        out["enum"] = [node["const"]]
    if "enum" in out and all(isinstance(v, str) for v in out["enum"]):
        out.setdefault("type", "string")
        # A bound lets the CEL cost estimator price comparisons on this field.
        out.setdefault("maxLength", max(len(v) for v in out["enum"]))
    is_int = out.get("type") == "integer"
    if "exclusiveMinimum" in node:
        bound = node["exclusiveMinimum"]
        out["minimum"] = bound + 1 if is_int else bound
        if not is_int:
            out["exclusiveMinimum"] = True
    if "exclusiveMaximum" in node:
        bound = node["exclusiveMaximum"]
        out["maximum"] = bound - 1 if is_int else bound
        if not is_int:
            out["exclusiveMaximum"] = True
    if out.get(PRESERVE):
        out.setdefault("type", "object")
    if "type" not in out:
        raise ValueError(f"schema node has no type: {node}")

    if "default" in node:
        emit, default = _structural_default(out, node["default"])
        if emit:
            out["default"] = default
    return _ordered(out)


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """`type` and `description` first, so the generated YAML reads top-down."""
    head = {k: node[k] for k in ("type", "description") if k in node}
    return {**head, **{k: v for k, v in node.items() if k not in head}}


def strip_defaults(node: dict[str, Any]) -> dict[str, Any]:
    """A copy of `node` without any `default` (for status, which only controllers write)."""
    out = {k: v for k, v in node.items() if k != "default"}
    if "properties" in out:
        out["properties"] = {k: strip_defaults(v) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = strip_defaults(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = strip_defaults(out["additionalProperties"])
    return out


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of `model`."""
    raw = json_schema(model)
    return _convert(raw, raw.get("$defs", {}))
