"""Base classes for request and response models (pydantic)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    """A JSON request body: strict types, unknown fields refused, strings trimmed."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True, frozen=True)


class QueryParams(BaseModel):
    """Query-string parameters: strings are coerced (``?limit=50``), unknown ones refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


def collapse_whitespace(value: str) -> str:
    """Folds every run of whitespace into one space; refuses a blank result."""
    value = " ".join(value.split())
    if not value:
        raise ValueError("must not be blank")
    return value
