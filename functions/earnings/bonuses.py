"""Bonuses: the daily bonus and streak for verified watching, the referral bonus and the referral commission.

Configuration is the single row of ``bonus_config`` (migration 0013), read inside the statement
that decides each bonus, so a staff edit applies without a deploy or a cache; when referrals
qualify and how long credits stay pending are settings (``REFERRAL_*``, ``CLEARING_*``).
Every credit is a ledger entry under a deterministic idempotency key, so it lands at most once:

  * ``login_bonus:<user_id>:<utc_date>``   the first verified watching of each UTC day (a completed
    video), never a bare login (migration 0061; the name stays for the history's sake);
  * ``streak_bonus:<user_id>:<utc_date>``  the same day, by consecutive UTC days with verified watching
    (``streak_bonus_micros[n]``, the last element caps longer streaks), reset to day 1 after a missed day;
  * ``referral_bonus:<referred_user_id>``  to the referrer when the referred user completes a first video,
    pending until the referral qualifies (``try_qualify``) and reversed if it expires first;
  * ``referral_commission:<reward_entry_id>``  ``referral_commission_bps`` of each video reward of the
    referred user (integer math, rounded down), to the referrer, on the same terms; never of bonuses.

The entry points run inside their caller's transaction (video completion; KYC decision) and take a
``today`` for tests; nothing here scans a user's ledger.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from functions.ledger import service as ledger
from shared import error_codes as codes
from shared.config import get_settings
from shared.db import Conn, Query
from shared.errors import ValidationFailed
from shared.logs import get_logger

log = get_logger(__name__)

BPS_DENOMINATOR = 10_000
# Referrers in these states still earn (a suspension is temporary); blocked or erased ones do not.
EARNING_REFERRER_STATUSES = ("active", "suspended")

# First verified watching of ``today``? Advances (or resets) the streak and returns the amounts to
# credit, all in one statement; returns no row when the day was already counted (or a later one), or
# for staff (who earn no bonuses), which is also how two concurrent completions resolve: the second
# waits on the row lock and then sees today. (The table keeps its name from when a login counted.)
LOGIN_STREAK = Query(
    "bonus_login_streak",
    """
    WITH s AS (
        INSERT INTO login_streaks AS ls (user_id, last_login_date, streak_days, longest_streak_days)
        SELECT u.id, CAST(:today AS date), 1, 1 FROM users u WHERE u.id = CAST(:user_id AS uuid) AND u.role = 'user'
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
        SELECT r.id AS referrer_id, u.created_at AS signed_up_at
          FROM users u JOIN users r ON r.id = u.referred_by
         WHERE u.id = CAST(:user_id AS uuid) AND r.status = ANY(CAST(:statuses AS text[]))
    ), q AS (
        INSERT INTO referral_qualifications (referred_user_id, referrer_id, video_id, reward_entry_id)
        SELECT CAST(:user_id AS uuid), ref.referrer_id, :video_id, :entry_id FROM ref, reward
        ON CONFLICT (referred_user_id) DO NOTHING
        RETURNING referrer_id
    ), referral AS (
        -- the referral's state; created 'pending' by the first completion (the no-op update returns
        -- an existing row and serialises one referred user's completions)
        INSERT INTO referrals AS r (referred_user_id, referrer_id, expires_at)
        SELECT CAST(:user_id AS uuid), ref.referrer_id, ref.signed_up_at + make_interval(days => CAST(:window_days AS int))
          FROM ref, reward
        ON CONFLICT (referred_user_id) DO UPDATE SET status = r.status
        RETURNING r.status, r.expires_at <= now() AS past_window
    )
    SELECT (SELECT amount FROM reward) AS reward_micros,
           (SELECT referrer_id::text FROM ref) AS referrer_id,
           EXISTS (SELECT 1 FROM q) AS first_completion,
           (SELECT status FROM referral) AS referral_status,
           coalesce((SELECT past_window FROM referral), false) AS past_window,
           coalesce(c.referral_bonus_micros, 0) AS referral_bonus_micros,
           coalesce(c.referral_commission_bps, 0) AS referral_commission_bps
      FROM (SELECT 1) one LEFT JOIN bonus_config c ON c.id
    """,
)

# Does the referral of :user_id qualify now? The referred account's own activity (video rewards of
# at least :min_micros on at least :days distinct UTC days, from daily_video_earnings: one row per
# day, no ledger scan), a verified email address (issue 11) and verified KYC, within the window; then a slot under the referrer's daily
# limit (the upsert only increments below it, so concurrent qualifications cannot exceed it).
# Returns the referrer when this call qualified it, no row otherwise.
TRY_QUALIFY = Query(
    "bonus_referral_try_qualify",
    """
    WITH cand AS (
        SELECT r.referred_user_id, r.referrer_id
          FROM referrals r JOIN users u ON u.id = r.referred_user_id
         WHERE r.referred_user_id = CAST(:user_id AS uuid) AND r.status = 'pending' AND r.expires_at > now()
           AND u.email_verified_at IS NOT NULL
           AND (NOT CAST(:require_kyc AS boolean) OR u.kyc_status = 'verified')
           -- referrer and referred share a device or payout destination: never qualifies (docs/fraud.md)
           AND NOT ep_risk_linked(r.referrer_id, r.referred_user_id)
           AND (SELECT count(*) >= CAST(:days AS int) AND coalesce(sum(d.credited_micros), 0) >= CAST(:min_micros AS bigint)
                  FROM daily_video_earnings d WHERE d.user_id = r.referred_user_id AND d.credited_micros > 0)
           FOR UPDATE OF r
    ), slot AS (
        INSERT INTO referral_daily_qualifications AS q (referrer_id, day, qualified)
        SELECT referrer_id, CAST(:today AS date), 1 FROM cand WHERE CAST(:daily_limit AS int) > 0
        ON CONFLICT (referrer_id, day) DO UPDATE SET qualified = q.qualified + 1 WHERE q.qualified < CAST(:daily_limit AS int)
        RETURNING referrer_id
    )
    UPDATE referrals r SET status = 'qualified', qualified_at = now()
      FROM slot
     WHERE r.referred_user_id = CAST(:user_id AS uuid) AND r.status = 'pending'
    RETURNING r.referrer_id::text AS referrer_id
    """,
)

# Pending referrals past their window, soonest first; claimed so two sweeps never expire one twice.
EXPIRE_REFERRALS = Query(
    "bonus_referral_expire",
    """UPDATE referrals SET status = 'expired', expired_at = now()
        WHERE referred_user_id IN (
              SELECT referred_user_id FROM referrals
               WHERE status = 'pending' AND expires_at <= coalesce(CAST(:now AS timestamptz), now())
               ORDER BY expires_at LIMIT :limit FOR UPDATE SKIP LOCKED)
       RETURNING referred_user_id::text AS referred_user_id, referrer_id::text AS referrer_id""",
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


def on_verified_watch(conn: Conn, user_id: str, *, today: dt.date | None = None) -> dict[str, Any] | None:
    """The daily and streak bonuses on the first verified watching of the UTC day (a completed video).

    Call in the completion transaction. A bare login earns nothing (the login bonus used to pay an
    account that never watched anything). Returns ``None`` when today was already counted (or for
    staff), else ``{"date", "streak_days", "credited": [{"type", "amount", "entry_id"}...], "total"}``
    (amounts in the money shape). The credits are pending for ``CLEARING_BONUS_HOURS``.
    """
    day = today or utc_today()
    row = conn.one(LOGIN_STREAK, user_id=str(user_id), today=day)
    if row is None:
        return None
    streak_days = int(row["streak_days"])
    credited: list[dict[str, Any]] = []
    for type_, amount, key, metadata in (
        ("login_bonus", int(row["login_bonus_micros"]), f"login_bonus:{user_id}:{day.isoformat()}", None),
        ("streak_bonus", int(row["streak_bonus_micros"]), f"streak_bonus:{user_id}:{day.isoformat()}", {"streak_days": streak_days}),
    ):
        if amount <= 0:
            continue
        posted = ledger.post(
            conn,
            user_id=str(user_id),
            type=type_,
            amount=amount,
            idempotency_key=key,
            source="watch",
            reference=day.isoformat(),
            metadata=metadata,
        )
        if not posted.duplicate:
            credited.append({"type": type_, "amount": ledger.money(amount), "entry_id": posted.entry_id})
    return {
        "date": day.isoformat(),
        "streak_days": streak_days,
        "credited": credited,
        "total": ledger.money(sum(c["amount"]["micros"] for c in credited)),
    }


def awaiting_key(referred_user_id: str) -> str:
    """What a referral's pending rewards await (``ledger_settle_awaiting``)."""
    return f"referral:{referred_user_id}"


def try_qualify(conn: Conn, referred_user_id: str, *, today: dt.date | None = None) -> bool:
    """Qualifies the referral of ``referred_user_id`` if its conditions hold now and the referrer has a
    slot left today; its pending rewards then clear after ``CLEARING_REFERRAL_HOURS``. Call in the
    transaction of the event that may have changed the conditions (a completion, a KYC decision, the
    email address verified)."""
    s = get_settings()
    row = conn.one(
        TRY_QUALIFY,
        user_id=str(referred_user_id),
        require_kyc=s.referral_require_kyc,
        days=s.referral_qualify_days,
        min_micros=s.referral_qualify_min_micros,
        today=today or utc_today(),
        daily_limit=s.referral_daily_limit,
    )
    if row is None:
        return False
    clears_at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=s.clearing_referral_hours)
    settled = ledger.settle_awaiting(conn, awaiting_key(referred_user_id), clears_at=clears_at)
    log.info(
        "referral of %s qualified",
        referred_user_id,
        extra={
            "event": "referral_qualified",
            "referred_user_id": str(referred_user_id),
            "referrer_id": row["referrer_id"],
            "settled": settled,
        },
    )
    return True


def expire_referrals(conn: Conn, *, limit: int = 500, now: dt.datetime | None = None) -> dict[str, int]:
    """Expires pending referrals past their window and reverses their pending rewards, in one transaction."""
    with conn.transaction():
        expired = conn.all(EXPIRE_REFERRALS, limit=limit, now=now)
        reversed_ = 0
        for r in sorted(expired, key=lambda r: (r["referrer_id"], r["referred_user_id"])):
            reversed_ += ledger.settle_awaiting(
                conn, awaiting_key(r["referred_user_id"]), clears_at=None, metadata={"reason": "referral_expired"}
            )
    return {"expired": len(expired), "reversed": reversed_}


def on_video_completed(conn: Conn, user_id: str, video_id: str, reward_micros: int, reward_entry_id: int) -> None:
    """Referral bonus (first completion only) and commission for the referrer; call in the completion transaction.

    Both are pending for the referrer until the referral qualifies (this completion may be the one
    that qualifies it); nothing is credited once the referral expired.

    ``reward_entry_id`` must be the ``video_reward`` entry of ``user_id`` this completion posted
    (checked in the database: commission is only ever paid on video rewards).
    """
    row = conn.one(
        REFERRAL_ON_COMPLETION,
        user_id=str(user_id),
        video_id=str(video_id),
        entry_id=int(reward_entry_id),
        statuses=list(EARNING_REFERRER_STATUSES),
        window_days=get_settings().referral_window_days,
    )
    assert row is not None
    if row["reward_micros"] is None:
        raise ValidationFailed("reward_entry_id is not a video reward of this user", code=codes.NOT_A_VIDEO_REWARD)
    reward = int(row["reward_micros"])
    if reward != reward_micros:
        raise ValidationFailed(f"reward_micros {reward_micros} differs from the reward entry's {reward}", code=codes.REWARD_MISMATCH)
    referrer = row["referrer_id"]
    if referrer is None:
        return
    status = row["referral_status"]
    if status == "expired" or (status == "pending" and row["past_window"]):
        return  # a referral that did not qualify in time earns nothing more (the sweep reverses the rest)
    # Qualify first (it settles the referrer's pending rows), then post: every path locks a pending
    # row before the balance, as the clearing job and clawback do.
    if status == "pending" and try_qualify(conn, str(user_id)):
        status = "qualified"
    awaiting = None if status == "qualified" else awaiting_key(str(user_id))
    meta = {"referred_user_id": str(user_id), "video_id": str(video_id), "reward_entry_id": int(reward_entry_id)}
    if row["first_completion"] and row["referral_bonus_micros"] > 0:
        ledger.post(
            conn,
            user_id=referrer,
            type="referral_bonus",
            amount=int(row["referral_bonus_micros"]),
            idempotency_key=f"referral_bonus:{user_id}",
            source="referral",
            reference=str(user_id),
            metadata=meta,
            awaiting=awaiting,
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
            awaiting=awaiting,
        )
