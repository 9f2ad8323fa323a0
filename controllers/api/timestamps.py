"""RFC 3339 timestamps, the form Kubernetes uses in status (`2024-05-01T12:00:00Z`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, Field


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch; raises ValueError unless `text` is RFC 3339 with a zone."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"must be an RFC 3339 timestamp (got {text!r})") from None
    # A naive time would be read in the local zone of whichever process parses it.
    if moment.tzinfo is None or "T" not in text.upper():
        raise ValueError(f"must be an RFC 3339 timestamp with a zone (got {text!r})")
    return moment.timestamp()


def format_rfc3339(seconds: float) -> str:
    """The RFC 3339 UTC form of seconds since the epoch, whole seconds like the API server."""
    return datetime.fromtimestamp(int(seconds), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_rfc3339(text: str) -> str:
    parse_rfc3339(text)
    return text


# Kept as the string the API server stores, checked on the way in.
Rfc3339 = Annotated[
    str, AfterValidator(_check_rfc3339), Field(json_schema_extra={"format": "date-time"})
]
