"""Request models of the earnings function."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from shared.pagination import PageQuery

EntryType = Literal[
    "video_reward",
    "login_bonus",
    "streak_bonus",
    "referral_bonus",
    "referral_commission",
    "adjustment",
    "payout_hold",
    "payout_release",
    "clearing",
    "reversal",
    "payout_paid",
]


def _instant(value: str) -> str:
    """An RFC 3339 date (``2025-01-31``) or date-time with an offset (``2025-01-31T12:00:00Z``)."""
    if len(value) == 10:
        dt.date.fromisoformat(value)
        return value
    if len(value) > 40 or "T" not in value.upper():
        raise ValueError("use an RFC 3339 date (YYYY-MM-DD) or date-time with an offset")
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("a date-time needs an offset, e.g. Z or +02:00")
    return value


Instant = Annotated[str, Field(min_length=10, max_length=40), AfterValidator(_instant)]


def start_of(value: str) -> dt.datetime:
    """The first instant a ``from`` bound includes (a date starts at 00:00 UTC)."""
    if len(value) == 10:
        return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.UTC)
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC)


def end_of(value: str) -> dt.datetime:
    """The first instant a ``to`` bound excludes (a date includes its whole UTC day)."""
    if len(value) == 10:
        return dt.datetime.combine(dt.date.fromisoformat(value) + dt.timedelta(days=1), dt.time(), dt.UTC)
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC)


class HistoryQuery(PageQuery):
    """``?limit=1..200&cursor=&type=&from=&to=`` (``from`` inclusive; ``to`` exclusive, or the whole day for a date)."""

    type: EntryType | None = None
    from_: Annotated[Instant | None, Field(alias="from")] = None
    to: Instant | None = None
