"""Request and response models of the earnings function."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from functions.ledger.service import EntryType as EntryType  # the one list of entry types
from shared.models import Money, Page, Response
from shared.pagination import PageQuery


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


# --- responses ---------------------------------------------------------------------------------------
class Entry(Response):
    """One ledger entry of the signed-in user (history pages and the export)."""

    seq: int = Field(description="the entry's position in the user's ledger, from 1")
    type: EntryType
    amount: Money = Field(description="positive for credits, negative for debits (payout holds)")
    balance_after: Money
    created_at: dt.datetime
    source: str
    reference: str | None


class HistoryEntry(Entry):
    """A history item: the entry and, for a credit still pending, when it clears."""

    pending: bool = Field(description="a credit not cleared yet (docs/ledger.md, buckets)")
    clears_at: dt.datetime | None = Field(description="when a pending credit clears; null while it awaits a condition")
    awaiting: Literal["referral_qualification", "condition"] | None = Field(description="what a pending credit waits for")


class HistoryPage(Page):
    items: list[HistoryEntry]


class Export(Response):
    user_id: str
    generated_at: dt.datetime
    count: int | None = Field(description="the number of entries")
    items: list[Entry] = Field(description="every entry, newest first")


class PeriodSums(Response):
    since: dt.datetime = Field(description="the period starts at this UTC midnight")
    earned: Money = Field(description="the sum of earning entries (payout holds and releases excluded)")
    by_type: dict[str, Money] = Field(description="sums by entry type (types with no entries left out)")


class Periods(Response):
    today: PeriodSums
    last_7_days: PeriodSums
    last_30_days: PeriodSums


class PendingEntry(Response):
    seq: int
    entry_id: int
    type: EntryType
    amount: Money
    clears_at: dt.datetime | None = Field(description="when it becomes available; null while it awaits a condition")
    awaiting: Literal["referral_qualification", "condition"] | None


class Stats(Response):
    available: Money
    pending: Money = Field(description="credits not cleared yet: not available for payouts")
    held: Money = Field(description="held for payouts on their way out")
    pending_entries: list[PendingEntry] = Field(description="each pending credit and its clearing time, soonest first (at most 100)")
    pending_entries_truncated: bool
    lifetime_earned: Money
    lifetime_paid_out: Money
    entry_count: int
    periods: Periods
    sums_cached: bool = Field(description="true when the period sums came from this instance's cache (at most 5 minutes old)")
    as_of: dt.datetime
