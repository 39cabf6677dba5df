"""The ledger: the one way money moves. Idempotent posting, balances, and verification.

Amounts are integer micro-dollars (``MICROS_PER_DOLLAR``). Every path that moves money calls
``post`` inside its own transaction, so the entry commits (or not) with the change it pays for.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from pg8000.exceptions import DatabaseError

from functions.ledger import queries as q
from shared import error_codes as codes
from shared import outbox
from shared.config import get_settings
from shared.db import (
    CHECK_VIOLATION,
    EP_BUCKET_NEGATIVE,
    EP_INSUFFICIENT_FUNDS,
    EP_INVALID_ENTRY,
    EP_KEY_REUSED,
    EP_NOT_A_CREDIT,
    EP_NOT_PENDING,
    EP_UNKNOWN_ENTRY,
    EP_UNKNOWN_USER,
    Conn,
    Query,
    domain_error,
    sqlstate,
)
from shared.errors import IdempotencyConflict as IdempotencyConflict  # re-exported: callers catch ledger.IdempotencyConflict
from shared.errors import InsufficientFunds as InsufficientFunds  # re-exported: callers catch ledger.InsufficientFunds
from shared.errors import NotACredit as NotACredit  # re-exported: callers catch ledger.NotACredit
from shared.errors import NotFound, ValidationFailed
from shared.errors import NotPending as NotPending  # re-exported: callers catch ledger.NotPending
from shared.models import CURRENCY, MICROS_PER_DOLLAR, format_micros, money, rfc3339

__all__ = ["CURRENCY", "MICROS_PER_DOLLAR", "format_micros", "money"]  # the money shape lives in shared.models
MICROS_PER_CENT = 10_000

# Every type an entry can have: the one list (the earnings_type_check constraint and the API's
# entry type, functions/earnings/models.py, are held equal to it by tests/shared/test_sql_functions.py).
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
    "partner_reward",
    "recovery",
    "recovery_payment",
]
# Entries only the ledger's own functions write (clearing job, clawback, settled payouts).
SYSTEM_ENTRY_TYPES = frozenset({"clearing", "reversal", "payout_paid", "recovery", "recovery_payment"})
# What callers post.
ENTRY_TYPES = frozenset(get_args(EntryType)) - SYSTEM_ENTRY_TYPES
# Credits: what can wait in the pending bucket.
CREDIT_TYPES = frozenset(
    {"video_reward", "login_bonus", "streak_bonus", "referral_bonus", "referral_commission", "adjustment", "partner_reward"}
)
# Pending until a condition is settled (ledger_settle_awaiting), then cleared or reversed.
AWAITING = datetime.max.replace(tzinfo=dt.UTC)
# The largest single entry we accept (a guard against fat-finger and overflow): $1,000,000.
MAX_ENTRY = 1_000_000 * MICROS_PER_DOLLAR


def clearing_period(type: str) -> dt.timedelta:
    """How long a credit of ``type`` stays pending (settings CLEARING_*; zero: available at once).

    Referral rewards are not here: they wait for their referral to qualify (``awaiting``) and then
    clear after ``clearing_referral_hours``.
    """
    s = get_settings()
    hours = {
        "video_reward": s.clearing_video_reward_hours,
        "login_bonus": s.clearing_bonus_hours,
        "streak_bonus": s.clearing_bonus_hours,
        "referral_bonus": s.clearing_referral_hours,
        "referral_commission": s.clearing_referral_hours,
        "adjustment": s.clearing_adjustment_hours,
    }.get(type, 0)
    return dt.timedelta(hours=hours)


@dataclass(frozen=True)
class Posted:
    """The entry a post produced (or, with ``duplicate``, the one an earlier post with the key produced)."""

    entry_id: int
    seq: int
    balance_after: int
    created_at: datetime
    duplicate: bool


def post(
    conn: Conn,
    *,
    user_id: str,
    type: str,
    amount: int,
    idempotency_key: str,
    source: str,
    reference: str | None = None,
    metadata: dict[str, Any] | None = None,
    clears: str = "auto",
    awaiting: str | None = None,
    clears_in: dt.timedelta | None = None,
) -> Posted:
    """Posts one entry exactly once per (user, key); raises InsufficientFunds rather than overdraw.

    A credit lands in pending when its type has a clearing period (``clears="auto"``, the default)
    and in available when it has none or with ``clears="now"``. With ``awaiting`` it stays pending
    until that condition is settled (``settle_awaiting``). ``clears_in`` overrides the type's period
    (a partner's own clearing period; zero: available at once).
    """
    if type not in ENTRY_TYPES and type != "payout_paid":
        raise ValidationFailed(f"unknown entry type {type!r}", code=codes.UNKNOWN_ENTRY_TYPE)
    if not isinstance(amount, int) or isinstance(amount, bool) or amount == 0 or abs(amount) > MAX_ENTRY:
        raise ValidationFailed("amount must be a non-zero integer of micro-dollars within limits", code=codes.INVALID_AMOUNT)
    clears_at: datetime | None = None
    if type in CREDIT_TYPES and amount > 0:
        if awaiting is not None:
            clears_at = AWAITING
        elif clears == "auto":
            period = clearing_period(type) if clears_in is None else clears_in
            if period > dt.timedelta(0):
                clears_at = dt.datetime.now(dt.UTC) + period
    elif awaiting is not None:
        raise ValidationFailed("only a credit can await a condition", code=codes.INVALID_ENTRY)
    params = {
        "user_id": user_id,
        "type": type,
        "amount": amount,
        "key": idempotency_key,
        "source": source,
        "reference": reference,
        "metadata": _json(metadata),
    }
    try:
        if clears_at is None:
            row = conn.one(q.POST, **params)
        else:
            row = conn.one(q.POST_PENDING, clears_at=_db_time(clears_at), awaiting=awaiting, **params)
    except DatabaseError as exc:
        # CHECK_VIOLATION: a CHECK on earnings, e.g. a positive hold or a negative reward
        expected = (EP_INSUFFICIENT_FUNDS, EP_UNKNOWN_USER, EP_KEY_REUSED, EP_INVALID_ENTRY, EP_BUCKET_NEGATIVE, CHECK_VIOLATION)
        error = domain_error(exc, expected, details={"requested": money(-amount)} if sqlstate(exc) == EP_INSUFFICIENT_FUNDS else None)
        if error is None:
            raise
        raise error from exc
    assert row is not None
    posted = Posted(row["entry_id"], row["entry_seq"], row["entry_balance_after"], row["entry_created_at"], row["duplicate"])
    if amount > 0 and not posted.duplicate:
        # Same transaction: the event exists exactly when the entry does (published after commit).
        outbox.emit(
            conn,
            "earnings_credited",
            {
                "entry_id": posted.entry_id,
                "user_id": user_id,
                "seq": posted.seq,
                "type": type,
                "amount": money(amount),
                "balance_after": money(posted.balance_after),
                "pending": clears_at is not None,
                "clears_at": None if clears_at is None or awaiting else rfc3339(clears_at),
                "awaiting": awaiting,
                "source": source,
                "reference": reference,
                "created_at": rfc3339(posted.created_at),
            },
            key=f"earnings_credited:{posted.entry_id}",
        )
    return posted


def _db_time(value: datetime) -> str | datetime:
    """'infinity' for the awaiting marker (Python has no infinite datetime), else the instant."""
    return "infinity" if value == AWAITING else value


def settle_payout(conn: Conn, user_id: str, payout_id: str, amount: int) -> int:
    """A paid payout leaves the held bucket with a ``payout_paid`` entry (once per payout); returns its id."""
    return int(conn.value(q.SETTLE_PAYOUT, user_id=user_id, payout_id=payout_id, amount=amount))


def reverse(conn: Conn, *, user_id: str, entry_id: int, source: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Takes back a pending credit with a ``reversal`` entry pointing at it (clawback).

    Reversing twice returns the first reversal with ``duplicate: True``; an entry that cleared (or was
    never pending) is ``NotPending`` (409), an unknown one ``NotFound``.
    """
    return _take_back(conn, q.REVERSE, (EP_UNKNOWN_ENTRY, EP_NOT_PENDING), user_id, entry_id, source, metadata)


def recover(conn: Conn, *, user_id: str, entry_id: int, source: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Takes a credit back whatever became of it (a partner's chargeback).

    Pending, it is clawed back as ``reverse`` does (``recovered: False``); cleared (available, held or
    paid out), the user owes it back: a ``recovery`` entry puts it in the recovery bucket, which later
    clearings pay off first (``recovered: True``). No bucket goes negative. Twice: the first answer
    with ``duplicate: True``.
    """
    return _take_back(conn, q.RECOVER, (EP_UNKNOWN_ENTRY, EP_NOT_A_CREDIT), user_id, entry_id, source, metadata)


def _take_back(
    conn: Conn, query: Query, expected: tuple[str, ...], user_id: str, entry_id: int, source: str, metadata: dict[str, Any] | None
) -> dict[str, Any]:
    """Runs ``reverse``'s or ``recover``'s SQL function; the states it raises by design become domain errors."""
    try:
        row = conn.one(query, user_id=user_id, entry_id=entry_id, source=source, metadata=_json(metadata))
    except DatabaseError as exc:
        error = domain_error(exc, expected)
        if error is None:
            raise
        raise error from exc
    assert row is not None
    return row


def _json(metadata: dict[str, Any] | None) -> str | None:
    """Metadata as compact JSON text for a jsonb parameter (None stays NULL)."""
    return json.dumps(metadata, separators=(",", ":")) if metadata is not None else None


def settle_awaiting(conn: Conn, awaiting: str, *, clears_at: datetime | None, metadata: dict[str, Any] | None = None) -> int:
    """The condition ``awaiting`` was met (its credits clear at ``clears_at``) or failed (``None``: reversed)."""
    return int(
        conn.value(
            q.SETTLE_AWAITING,
            awaiting=awaiting,
            clears_at=clears_at,
            metadata=_json(metadata),
        )
        or 0
    )


def clear_due(conn: Conn, *, limit: int, now: datetime | None = None) -> int:
    """Clears up to ``limit`` due pending entries in one transaction (schema owner only); returns how many."""
    return int(conn.value(q.CLEAR_DUE, limit=limit, now=now) or 0)


def balance(conn: Conn, user_id: str) -> dict[str, Any]:
    """The carried balance row: available, lifetime (gross) earned and paid out (never summed from history).

    ``lifetime_earned`` sums positive earning entries; negative adjustments are corrections that show
    in the history but do not reduce it.
    """
    row = conn.one(q.BALANCE, user_id=user_id)
    if row is None:
        raise NotFound("no such user", code=codes.UNKNOWN_USER)
    return row


def verify(conn: Conn, *, user_id: str | None = None, max_rows: int = 100) -> dict[str, Any]:
    """Checks every hash chain, that each bucket (pending, available, held, paid out) equals the sum of its
    entries, that pending equals the pending rows, and that paid payouts and payout_paid entries agree."""
    chain = conn.all(q.CHAIN_PROBLEMS, user_id=user_id, max_rows=max_rows)
    balances = conn.all(q.BALANCE_PROBLEMS, user_id=user_id, max_rows=max_rows)
    balances += conn.all(q.RECOVERY_PROBLEMS, user_id=user_id, max_rows=max_rows)
    payouts = conn.all(q.PAYOUT_PROBLEMS, user_id=user_id, max_rows=max_rows)
    totals = conn.one(q.LEDGER_TOTALS) or {}
    return {
        "ok": not chain and not balances and not payouts,
        "entries": totals.get("entries"),
        "balances": totals.get("balances"),
        "chain_problems": chain,
        "balance_problems": balances,
        "payout_problems": payouts,
    }
