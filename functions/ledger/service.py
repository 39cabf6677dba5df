"""The ledger: the one way money moves. Idempotent posting, balances, and verification.

Amounts are integer micro-dollars (``MICROS_PER_DOLLAR``). Every path that moves money calls
``post`` inside its own transaction, so the entry commits (or not) with the change it pays for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pg8000.exceptions import DatabaseError

from functions.ledger import queries as q
from shared import outbox
from shared.db import CHECK_VIOLATION, EP_INSUFFICIENT_FUNDS, EP_KEY_REUSED, EP_UNKNOWN_USER, Conn, domain_error, sqlstate
from shared.errors import IdempotencyConflict as IdempotencyConflict  # re-exported: callers catch ledger.IdempotencyConflict
from shared.errors import InsufficientFunds as InsufficientFunds  # re-exported: callers catch ledger.InsufficientFunds
from shared.errors import NotFound, ValidationFailed
from shared.models import CURRENCY, MICROS_PER_DOLLAR, format_micros, money, rfc3339

__all__ = ["CURRENCY", "MICROS_PER_DOLLAR", "format_micros", "money"]  # the money shape lives in shared.models
MICROS_PER_CENT = 10_000

ENTRY_TYPES = frozenset(
    {"video_reward", "login_bonus", "streak_bonus", "referral_bonus", "referral_commission", "adjustment", "payout_hold", "payout_release"}
)
# The largest single entry we accept (a guard against fat-finger and overflow): $1,000,000.
MAX_ENTRY = 1_000_000 * MICROS_PER_DOLLAR


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
) -> Posted:
    """Posts one entry exactly once per (user, key); raises InsufficientFunds rather than overdraw."""
    if type not in ENTRY_TYPES:
        raise ValidationFailed(f"unknown entry type {type!r}", code="unknown_entry_type")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount == 0 or abs(amount) > MAX_ENTRY:
        raise ValidationFailed("amount must be a non-zero integer of micro-dollars within limits", code="invalid_amount")
    try:
        row = conn.one(
            q.POST,
            user_id=user_id,
            type=type,
            amount=amount,
            key=idempotency_key,
            source=source,
            reference=reference,
            metadata=json.dumps(metadata, separators=(",", ":")) if metadata is not None else None,
        )
    except DatabaseError as exc:
        expected = (EP_INSUFFICIENT_FUNDS, EP_UNKNOWN_USER, EP_KEY_REUSED, CHECK_VIOLATION)  # CHECK: e.g. a positive hold
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
                "source": source,
                "reference": reference,
                "created_at": rfc3339(posted.created_at),
            },
            key=f"earnings_credited:{posted.entry_id}",
        )
    return posted


def record_paid_out(conn: Conn, user_id: str, amount: int) -> None:
    """Counts a settled payout (whose hold already left the available balance) in lifetime paid out."""
    conn.value(q.RECORD_PAID_OUT, user_id=user_id, amount=amount)


def balance(conn: Conn, user_id: str) -> dict[str, Any]:
    """The carried balance row: available, lifetime (gross) earned and paid out (never summed from history).

    ``lifetime_earned`` sums positive earning entries; negative adjustments are corrections that show
    in the history but do not reduce it.
    """
    row = conn.one(q.BALANCE, user_id=user_id)
    if row is None:
        raise NotFound("no such user", code="unknown_user")
    return row


def verify(conn: Conn, *, user_id: str | None = None, max_rows: int = 100) -> dict[str, Any]:
    """Checks every hash chain and that each balance equals the sum of its entries."""
    chain = conn.all(q.CHAIN_PROBLEMS, user_id=user_id, max_rows=max_rows)
    balances = conn.all(q.BALANCE_PROBLEMS, user_id=user_id, max_rows=max_rows)
    totals = conn.one(q.LEDGER_TOTALS) or {}
    return {
        "ok": not chain and not balances,
        "entries": totals.get("entries"),
        "balances": totals.get("balances"),
        "chain_problems": chain,
        "balance_problems": balances,
    }
