"""Bonuses: the daily login bonus, the login streak bonus, the referral bonus and the referral commission.

Configuration is the single row of ``bonus_config`` (migration 0013), read inside the statement
that decides each bonus, so a staff edit applies to the next login without a deploy or a cache.
Every credit is a ledger entry under a deterministic idempotency key, so it lands at most once:

  * ``login_bonus:<user_id>:<utc_date>``   first login of each UTC day;
  * ``streak_bonus:<user_id>:<utc_date>``  same login, by consecutive UTC days (``streak_bonus_micros[n]``,
    the last element caps longer streaks), reset to day 1 after a missed day;
  * ``referral_bonus:<referred_user_id>``  to the referrer when the referred user completes a first video;
  * ``referral_commission:<reward_entry_id>``  ``referral_commission_bps`` of each video reward of the
    referred user (integer math, rounded down), to the referrer; never of bonuses.

Both entry points run inside their caller's transaction (login; video completion) and take a
``today`` for tests; nothing here scans history.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from functions.ledger import service as ledger
from shared.db import Conn, Query
from shared.errors import ValidationFailed
from shared.logs import get_logger

log = get_logger(__name__)

BPS_DENOMINATOR = 10_000
# Referrers in these states still earn (a suspension is temporary); blocked or erased ones do not.
EARNING_REFERRER_STATUSES = ("active", "suspended")

# First login of ``today``? Advances (or resets) the streak and returns the amounts to credit, all in
# one statement; returns no row when the user already logged in today (or on a later date), which
# is also how two concurrent logins resolve: the second waits on the row lock and then sees today.
LOGIN_STREAK = Query(
    "bonus_login_streak",
    """
    WITH s AS (
        INSERT INTO login_streaks AS ls (user_id, last_login_date, streak_days, longest_streak_days)
        VALUES (CAST(:user_id AS uuid), CAST(:today AS date), 1, 1)
        ON CONFLICT (user_id) DO UPDATE
           SET streak_days = CASE WHEN ls.last_login_date = EXCLUDED.last_login_date - 1 THEN ls.streak_days + 1 ELSE 1 END,
               longest_streak_days = greatest(
                   ls.longest_streak_days,
                   CASE WHEN ls.last_login_date = EXCLUDED.last_login_date - 1 THEN ls.streak_days + 1 ELSE 1 END),
               last_login_date = EXCLUDED.last_login_date,
               updated_at = now()
         WHERE ls.last_login_date < EXCLUDED.last_login_date
        RETURNING ls.streak_days
    )
    SELECT s.streak_days,
           coalesce(c.login_bonus_micros, 0) AS login_bonus_micros,
           coalesce(c.streak_bonus_micros[least(s.streak_days, cardinality(c.streak_bonus_micros))], 0) AS streak_bonus_micros
      FROM s LEFT JOIN bonus_config c ON c.id
    """,
)

# The referral side of a completed video, in one statement: the reward entry (must be a video
# reward of this user), the referrer (if any, and still able to earn), whether this completion
# qualifies the referred user (first time only) and the configuration.
REFERRAL_ON_COMPLETION = Query(
    "bonus_referral_on_completion",
    """
    WITH reward AS (
        SELECT amount FROM earnings
         WHERE user_id = CAST(:user_id AS uuid) AND id = :entry_id AND type = 'video_reward'
    ), ref AS (
        SELECT r.id AS referrer_id
          FROM users u JOIN users r ON r.id = u.referred_by
         WHERE u.id = CAST(:user_id AS uuid) AND r.status = ANY(CAST(:statuses AS text[]))
           -- a referral from an account whose email is unverified does not qualify (yet)
           AND u.email_verified_at IS NOT NULL
    ), q AS (
        INSERT INTO referral_qualifications (referred_user_id, referrer_id, video_id, reward_entry_id)
        SELECT CAST(:user_id AS uuid), ref.referrer_id, :video_id, :entry_id FROM ref, reward
        ON CONFLICT (referred_user_id) DO NOTHING
        RETURNING referrer_id
    )
    SELECT (SELECT amount FROM reward) AS reward_micros,
           (SELECT referrer_id::text FROM ref) AS referrer_id,
           EXISTS (SELECT 1 FROM q) AS newly_qualified,
           coalesce(c.referral_bonus_micros, 0) AS referral_bonus_micros,
           coalesce(c.referral_commission_bps, 0) AS referral_commission_bps
      FROM (SELECT 1) one LEFT JOIN bonus_config c ON c.id
    """,
)

CONFIG = Query(
    "bonus_config",
    """SELECT login_bonus_micros, streak_bonus_micros, referral_bonus_micros, referral_commission_bps, updated_at
         FROM bonus_config WHERE id""",
)


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def config(conn: Conn) -> dict[str, Any]:
    """The current bonus configuration (for display and admin screens)."""
    row = conn.one(CONFIG)
    return row or {}


def commission(reward_micros: int, bps: int) -> int:
    """``bps`` basis points of a reward, rounded down to the micro-dollar (integers only)."""
    if reward_micros <= 0 or bps <= 0:
        return 0
    return (reward_micros * bps) // BPS_DENOMINATOR


def on_login(conn: Conn, user: dict[str, Any], *, today: dt.date | None = None) -> dict[str, Any]:
    """Credits the daily login and streak bonuses on the first login of the UTC day (inside the login transaction).

    Returns ``{"bonus": None}`` when today's bonus was already credited, else ``{"bonus": {"date",
    "streak_days", "credited": [{"type", "amount", "entry_id"}...], "total", "balance"}}`` (amounts
    in the money shape) for the login answer.
    """
    if user.get("role", "user") != "user":  # staff accounts do not earn bonuses
        return {"bonus": None}
    day = today or utc_today()
    user_id = str(user["id"])
    row = conn.one(LOGIN_STREAK, user_id=user_id, today=day)
    if row is None:
        return {"bonus": None}
    streak_days = int(row["streak_days"])
    credited: list[dict[str, Any]] = []
    balance: int | None = None
    for type_, amount, key, metadata in (
        ("login_bonus", int(row["login_bonus_micros"]), f"login_bonus:{user_id}:{day.isoformat()}", None),
        ("streak_bonus", int(row["streak_bonus_micros"]), f"streak_bonus:{user_id}:{day.isoformat()}", {"streak_days": streak_days}),
    ):
        if amount <= 0:
            continue
        posted = ledger.post(
            conn,
            user_id=user_id,
            type=type_,
            amount=amount,
            idempotency_key=key,
            source="login",
            reference=day.isoformat(),
            metadata=metadata,
        )
        balance = posted.balance_after
        if not posted.duplicate:
            credited.append({"type": type_, "amount": ledger.money(amount), "entry_id": posted.entry_id})
    return {
        "bonus": {
            "date": day.isoformat(),
            "streak_days": streak_days,
            "credited": credited,
            "total": ledger.money(sum(c["amount"]["micros"] for c in credited)),
            "balance": None if balance is None else ledger.money(balance),
        }
    }


def on_video_completed(conn: Conn, user_id: str, video_id: str, reward_micros: int, reward_entry_id: int) -> None:
    """Referral bonus (first completion only) and commission for the referrer; call in the completion transaction.

    ``reward_entry_id`` must be the ``video_reward`` entry of ``user_id`` this completion posted
    (checked in the database: commission is only ever paid on video rewards).
    """
    row = conn.one(
        REFERRAL_ON_COMPLETION,
        user_id=str(user_id),
        video_id=str(video_id),
        entry_id=int(reward_entry_id),
        statuses=list(EARNING_REFERRER_STATUSES),
    )
    assert row is not None
    if row["reward_micros"] is None:
        raise ValidationFailed("reward_entry_id is not a video reward of this user", code="not_a_video_reward")
    reward = int(row["reward_micros"])
    if reward != reward_micros:
        raise ValidationFailed(f"reward_micros {reward_micros} differs from the reward entry's {reward}", code="reward_mismatch")
    referrer = row["referrer_id"]
    if referrer is None:
        return
    meta = {"referred_user_id": str(user_id), "video_id": str(video_id), "reward_entry_id": int(reward_entry_id)}
    if row["newly_qualified"] and row["referral_bonus_micros"] > 0:
        ledger.post(
            conn,
            user_id=referrer,
            type="referral_bonus",
            amount=int(row["referral_bonus_micros"]),
            idempotency_key=f"referral_bonus:{user_id}",
            source="referral",
            reference=str(user_id),
            metadata=meta,
        )
    bps = int(row["referral_commission_bps"])
    amount = commission(reward, bps)
    if amount > 0:
        ledger.post(
            conn,
            user_id=referrer,
            type="referral_commission",
            amount=amount,
            idempotency_key=f"referral_commission:{reward_entry_id}",
            source="referral",
            reference=str(user_id),
            metadata={**meta, "bps": bps, "reward_micros": reward},
        )
