"""SQL of the admin function: one named statement each."""

from shared.db import Query

_USER_LIST_COLUMNS = """u.id::text AS id, u.email, u.display_name, u.referral_code, u.role, u.status, u.kyc_status,
    u.created_at"""

# --- searching users -------------------------------------------------------------------------------
USER_BY_EMAIL = Query("admin_user_by_email", f"SELECT {_USER_LIST_COLUMNS} FROM users u WHERE u.email = :email")

USER_BY_REFERRAL_CODE = Query("admin_user_by_referral_code", f"SELECT {_USER_LIST_COLUMNS} FROM users u WHERE u.referral_code = :code")

# Prefix search in byte order (text_pattern_ops index idx_users_email_pattern, 0027): the bounds
# [lo, hi) select exactly the emails starting with the prefix whatever the database's collation,
# and ``after`` (the previous page's last email, '' on the first page) positions the page.
USERS_BY_EMAIL_PREFIX = Query(
    "admin_users_by_email_prefix",
    f"""SELECT {_USER_LIST_COLUMNS} FROM users u
         WHERE u.email ~>=~ :lo AND u.email ~<~ :hi AND u.email ~>~ :after
         ORDER BY u.email USING ~<~
         LIMIT :limit""",
)

# Everyone (optionally one role), newest first (idx_users_created, 0027).
USERS_NEWEST = Query(
    "admin_users_newest",
    f"""SELECT {_USER_LIST_COLUMNS} FROM users u
         WHERE (CAST(:role AS text) IS NULL OR u.role = CAST(:role AS text))
           AND (CAST(:after_at AS timestamptz) IS NULL
                OR (u.created_at, u.id) < (CAST(:after_at AS timestamptz), CAST(:after_id AS uuid)))
         ORDER BY u.created_at DESC, u.id DESC
         LIMIT :limit""",
    prepared=False,
)

# --- one user --------------------------------------------------------------------------------------
USER_DETAIL = Query(
    "admin_user_detail",
    """SELECT u.id::text AS id, u.email, u.display_name, u.referral_code, u.referred_by::text AS referred_by,
              u.kyc_status, u.role, u.status, u.created_at, u.updated_at, u.erased_at,
              b.available, b.pending, b.held, b.lifetime_earned, b.lifetime_paid_out, b.entry_count,
              (SELECT count(*) FROM sessions s
                WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.expires_at > now()
                  AND s.last_seen_at + s.idle_timeout > now()) AS live_sessions,
              (SELECT max(s.last_seen_at) FROM sessions s WHERE s.user_id = u.id) AS last_seen_at
         FROM users u JOIN balances b ON b.user_id = u.id
        WHERE u.id = CAST(:id AS uuid)""",
)

LEDGER_PAGE = Query(
    "admin_ledger_page",
    """SELECT id, seq, type, amount, balance_after, source, reference, metadata, created_at
         FROM earnings
        WHERE user_id = CAST(:user_id AS uuid) AND (CAST(:before_seq AS bigint) IS NULL OR seq < CAST(:before_seq AS bigint))
          AND (CAST(:type AS text) IS NULL OR type = CAST(:type AS text))
        ORDER BY seq DESC
        LIMIT :limit""",
)

PAYOUT_SUMMARY = Query(
    "admin_payout_summary",
    """SELECT status, count(*) AS count, sum(amount_cents)::bigint AS amount_cents
         FROM payout_requests WHERE user_id = CAST(:user_id AS uuid)
        GROUP BY status ORDER BY status""",
)

RECENT_PAYOUTS = Query(
    "admin_recent_payouts",
    """SELECT id::text AS id, status, amount_cents, currency, method_type, method_label, requested_at, decided_at, completed_at
         FROM payout_requests WHERE user_id = CAST(:user_id AS uuid)
        ORDER BY requested_at DESC, id DESC
        LIMIT :limit""",
)

# --- one user's account (the console's user page) ---------------------------------------------------
USER_SESSIONS = Query(
    "admin_user_sessions",
    """SELECT id, created_at, last_seen_at, expires_at, revoked_at, revoked_reason,
              (revoked_at IS NULL AND expires_at > now() AND last_seen_at + idle_timeout > now()) AS live
         FROM sessions WHERE user_id = CAST(:user_id AS uuid)
        ORDER BY created_at DESC, id DESC
        LIMIT :limit""",
)

# Labels are masked when a method is added (``pp***@example.com``, ``****1234``); details never leave.
USER_PAYOUT_METHODS = Query(
    "admin_user_payout_methods",
    """SELECT id::text AS id, type, label, is_default, created_at, erased_at
         FROM payout_methods WHERE user_id = CAST(:user_id AS uuid)
        ORDER BY created_at DESC, id""",
)

USER_REFERRER = Query(
    "admin_user_referrer",
    f"""SELECT {_USER_LIST_COLUMNS} FROM users u
         WHERE u.id = (SELECT referred_by FROM users WHERE id = CAST(:user_id AS uuid))""",
)

# The people this user referred, and how many each of them referred in turn (the tree's second level).
USER_REFERRED = Query(
    "admin_user_referred",
    f"""SELECT {_USER_LIST_COLUMNS},
              (SELECT count(*) FROM users r2 WHERE r2.referred_by = u.id) AS referred_count
         FROM users u WHERE u.referred_by = CAST(:user_id AS uuid)
        ORDER BY u.created_at DESC, u.id DESC
        LIMIT :limit""",
)

USER_REFERRED_COUNT = Query("admin_user_referred_count", "SELECT count(*) AS n FROM users WHERE referred_by = CAST(:user_id AS uuid)")

USER_WITHHELD = Query(
    "admin_user_withheld",
    """SELECT w.id, w.video_id::text AS video_id, v.title AS video_title, w.day, w.reward_micros, w.withheld_micros,
              w.status, w.resolved_at, w.resolution_entry_id, w.created_at
         FROM withheld_rewards w JOIN videos v ON v.id = w.video_id
        WHERE w.user_id = CAST(:user_id AS uuid)
        ORDER BY w.created_at DESC, w.id DESC
        LIMIT :limit""",
)

LOCK_WITHHELD = Query(
    "admin_lock_withheld",
    """SELECT id, user_id::text AS user_id, video_id::text AS video_id, withheld_micros, status
         FROM withheld_rewards WHERE id = :id AND user_id = CAST(:user_id AS uuid) FOR UPDATE""",
)

RESOLVE_WITHHELD = Query(
    "admin_resolve_withheld",
    """UPDATE withheld_rewards
          SET status = :status, resolved_at = now(), resolved_by = CAST(:staff_id AS uuid), resolution_entry_id = :entry_id
        WHERE id = :id""",
)

USER_EXISTS = Query("admin_user_exists", "SELECT status FROM users WHERE id = CAST(:id AS uuid)")

# --- roles -----------------------------------------------------------------------------------------
# Every active admin row, locked in id order (one order for everyone: concurrent role changes queue
# instead of deadlocking), so "is this the last admin?" cannot race another demotion.
LOCK_ACTIVE_ADMINS = Query(
    "admin_lock_active_admins",
    "SELECT id::text AS id FROM users WHERE role = 'admin' AND status = 'active' ORDER BY id FOR UPDATE",
)

LOCK_USER = Query(
    "admin_lock_user",
    "SELECT id::text AS id, role, status, kyc_status FROM users WHERE id = CAST(:id AS uuid) FOR UPDATE",
)

SET_ROLE = Query(
    "admin_set_role",
    "UPDATE users SET role = :role, updated_at = now() WHERE id = CAST(:id AS uuid) RETURNING id::text AS id, role, status",
)

REVOKE_SESSIONS = Query(
    "admin_revoke_sessions",
    """UPDATE sessions SET revoked_at = now(), revoked_reason = :reason
        WHERE user_id = CAST(:user_id AS uuid) AND revoked_at IS NULL""",
)

# --- the audit log ---------------------------------------------------------------------------------
AUDIT_PAGE = Query(
    "admin_audit_page",
    """SELECT id, actor_id::text AS actor_id, actor_role, action, target_type, target_id,
              subject_user_id::text AS subject_user_id, before, after, reason, request_id, created_at
         FROM audit_log
        WHERE (CAST(:actor_id AS uuid) IS NULL OR actor_id = CAST(:actor_id AS uuid))
          AND (CAST(:subject_user_id AS uuid) IS NULL OR subject_user_id = CAST(:subject_user_id AS uuid))
          AND (CAST(:target_type AS text) IS NULL OR target_type = CAST(:target_type AS text))
          AND (CAST(:target_id AS text) IS NULL OR target_id = CAST(:target_id AS text))
          AND (CAST(:action AS text) IS NULL OR action = CAST(:action AS text))
          AND (CAST(:before_id AS bigint) IS NULL OR id < CAST(:before_id AS bigint))
        ORDER BY id DESC
        LIMIT :limit""",
    # the filters vary per call: a custom plan per execution lets each use its own index
    prepared=False,
)

# --- adjustments by key ------------------------------------------------------------------------------
# An adjustment's ledger key is ``adjustment:<staff id>:<Idempotency-Key>``: one index probe on the
# ledger's UNIQUE (user_id, idempotency_key).
ADJUSTMENT_BY_KEY = Query(
    "admin_adjustment_by_key",
    """SELECT id, seq, amount, balance_after, metadata, created_at
         FROM earnings
        WHERE user_id = CAST(:user_id AS uuid) AND idempotency_key = :key AND type = 'adjustment'""",
)
# Whether the staff member's request with this key holds a live claim (it may still commit).
KEY_IN_PROGRESS = Query(
    "admin_key_in_progress",
    """SELECT EXISTS (SELECT 1 FROM idempotency_keys
                       WHERE user_id = CAST(:staff_id AS uuid) AND key = :key AND status IS NULL AND locked_until > now())""",
)
