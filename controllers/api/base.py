"""The base classes every resource model derives from.

Field names are snake_case in Python and camelCase on the wire (the prototype's manifests), so
`model_validate(yaml_dict)` and `model_dump(by_alias=True, exclude_none=True)` round-trip.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """A part of a spec or status: camelCase aliases, strict types, unknown keys rejected.

    Strict so that `"5"` or `true` in a YAML file is reported instead of silently becoming an
    integer (the API server would reject them too). Unknown keys are rejected so that a typo in a
    scenario file is caught; a real CRD prunes them instead.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        validate_default=True,
    )


class OpenModel(BaseModel):
    """A part owned by the API server (object metadata): known keys typed, any other key kept."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
    )
