"""Base classes for request and response models (pydantic), and the one money shape."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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


# --- timestamps -------------------------------------------------------------------------------------
def rfc3339(value: dt.datetime) -> str:
    """The one timestamp style: RFC 3339 in UTC, always microseconds, ``Z`` (2026-01-02T03:04:05.000000Z).

    PostgreSQL writes the same with ``to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')``
    where it builds JSON itself (history, export).
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- money ------------------------------------------------------------------------------------------
MICROS_PER_DOLLAR = 1_000_000
CURRENCY = "USD"


def format_micros(amount: int) -> str:
    """The one display rule for micro-dollars: ``$``, thousands commas, at least 2 and at most 6 decimals.

    Digits beyond the cents are shown only when they are not zero (trailing zeros trimmed down to two
    decimals): 2500 -> "$0.0025", 1500000 -> "$1.50", 1234567 -> "$1.234567", -10000 -> "-$0.01".
    The SQL function ``format_micros`` (migration 0012) applies the same rule; a property test holds
    the two together.
    """
    sign = "-" if amount < 0 else ""
    dollars, micros = divmod(abs(amount), MICROS_PER_DOLLAR)
    frac = f"{micros:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}${dollars:,}.{frac}"


def money(micros: int) -> dict[str, Any]:
    """An amount as every response, event and error detail shows it (see ``Money``)."""
    return {"micros": micros, "formatted": format_micros(micros), "currency": CURRENCY}


class Money(BaseModel):
    """An amount of money: integer micro-dollars, its display string, and the currency (always USD)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    micros: int = Field(description="integer micro-dollars (1 USD = 1,000,000); negative for debits", examples=[2500])
    formatted: str = Field(
        description='display string: "$", thousands commas, 2 to 6 decimals (zeros beyond the cents trimmed)', examples=["$0.0025"]
    )
    currency: Literal["USD"] = Field(description="ISO 4217 code; always USD today")


class Response(BaseModel):
    """A JSON response body: documents every field (unknown fields are a contract bug)."""

    model_config = ConfigDict(extra="forbid")


class Page(Response):
    """Shared by every keyset-paginated list: ``next_cursor`` is null on the last page."""

    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


class Ok(Response):
    ok: bool
