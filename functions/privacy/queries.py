"""SQL of the privacy area: the sections of a data export, and the statements of an erasure.

Each export section is one statement returning one JSON array as text (json_agg: the rows arrive as
one value, not decoded row by row). A section lists the rows of its table that reference the user
through ANY column that points at users: the user's own rows in full (minus secrets: token hashes,
encrypted payout details, storage object names), and rows where the user acted on someone else
(staff) reduced to what the user did, without the other person's data.
tests/privacy/test_export.py discovers every such table from the catalogue and fails when one has no
section here.
"""

from __future__ import annotations

from shared.db import Query

_U = "CAST(:user_id AS uuid)"


def _section(name: str, *selects: str) -> Query:
    """A section: the union of ``selects`` (each yielding one json column ``r``, ordered by ``k``) as a JSON array."""
    body = "\n UNION ALL\n".join(f"({s})" for s in selects)
    return Query(
        f"privacy_export_{name}",
        f"SELECT coalesce(json_agg(x.r ORDER BY x.k), '[]')::text FROM ({body}) x",
        prepared=False,
    )


# table name -> its section. Keys are table names so the completeness test can compare them.
EXPORT_SECTIONS: dict[str, Query] = {
    "users": _section(
        "users",
        f"""SELECT json_build_object('relation', 'you', 'id', id, 'email', email, 'display_name', display_name,
                   'referral_code', referral_code, 'referred_by', referred_by, 'kyc_status', kyc_status, 'role', role,
                   'status', status, 'created_at', created_at, 'updated_at', updated_at,
                   'password_changed_at', password_changed_at, 'erased_at', erased_at) AS r, '0' || id::text AS k
              FROM users WHERE id = {_U}""",
        f"""SELECT json_build_object('relation', 'referred_by_you', 'id', id, 'created_at', created_at) AS r,
                   '1' || created_at::text || id::text AS k
              FROM users WHERE referred_by = {_U}""",
    ),
    "sessions": _section(
        "sessions",
        f"""SELECT json_build_object('id', id, 'created_at', created_at, 'last_seen_at', last_seen_at, 'expires_at', expires_at,
                   'idle_timeout_minutes', extract(epoch FROM idle_timeout)::bigint / 60, 'revoked_at', revoked_at,
                   'revoked_reason', revoked_reason, 'ip', host(ip), 'user_agent', user_agent) AS r, lpad(id::text, 20, '0') AS k
              FROM sessions WHERE user_id = {_U}""",
    ),
    "login_attempts": _section(
        "login_attempts",
        f"""SELECT json_build_object('id', id, 'email', email, 'ip', host(ip), 'succeeded', succeeded, 'created_at', created_at) AS r,
                   lpad(id::text, 20, '0') AS k
              FROM login_attempts WHERE user_id = {_U}""",
    ),
    "idempotency_keys": _section(
        "idempotency_keys",
        f"""SELECT json_build_object('key', key, 'status', status, 'created_at', created_at, 'completed_at', completed_at) AS r,
                   created_at::text || key AS k
              FROM idempotency_keys WHERE user_id = {_U}""",
    ),
    "balances": _section(
        "balances",
        f"""SELECT json_build_object('available_micros', available, 'pending_micros', pending, 'held_micros', held,
                   'lifetime_earned_micros', lifetime_earned,
                   'lifetime_paid_out_micros', lifetime_paid_out, 'entry_count', entry_count, 'updated_at', updated_at) AS r,
                   '0' AS k
              FROM balances WHERE user_id = {_U}""",
    ),
    "earnings": _section(
        "earnings",
        f"""SELECT json_build_object('id', id, 'seq', seq, 'type', type, 'amount_micros', amount, 'balance_after_micros', balance_after,
                   'source', source, 'reference', reference, 'metadata', metadata, 'created_at', created_at) AS r,
                   lpad(seq::text, 20, '0') AS k
              FROM earnings WHERE user_id = {_U}""",
    ),
    "credit_requests": _section(
        "credit_requests",
        f"""SELECT json_build_object('source', source, 'request_id', request_id, 'type', type, 'amount_micros', amount,
                   'entry_id', entry_id, 'created_at', created_at) AS r, created_at::text || source || request_id AS k
              FROM credit_requests WHERE user_id = {_U}""",
    ),
    "videos": _section(
        "videos",
        f"""SELECT json_build_object('relation', 'created_by_you', 'id', id, 'title', title, 'created_at', created_at) AS r,
                   created_at::text || id::text AS k
              FROM videos WHERE created_by = {_U}""",
    ),
    "video_progress": _section(
        "video_progress",
        f"""SELECT json_build_object('video_id', video_id, 'position_seconds', position_seconds, 'credited_seconds', credited_seconds,
                   'playing', playing, 'heartbeats', heartbeats, 'started_at', started_at, 'last_heartbeat_at', last_heartbeat_at,
                   'completed_at', completed_at, 'reward_micros', reward_micros, 'withheld_micros', withheld_micros,
                   'reward_entry_id', reward_entry_id) AS r, started_at::text || video_id::text AS k
              FROM video_progress WHERE user_id = {_U}""",
    ),
    "active_streams": _section(
        "active_streams",
        f"""SELECT json_build_object('video_id', video_id, 'last_heartbeat_at', last_heartbeat_at) AS r, '0' AS k
              FROM active_streams WHERE user_id = {_U}""",
    ),
    "daily_video_earnings": _section(
        "daily_video_earnings",
        f"""SELECT json_build_object('day', day, 'credited_micros', credited_micros, 'withheld_micros', withheld_micros,
                   'completions', completions) AS r, day::text AS k
              FROM daily_video_earnings WHERE user_id = {_U}""",
    ),
    "withheld_rewards": _section(
        "withheld_rewards",
        f"""SELECT json_build_object('relation', 'yours', 'id', id, 'video_id', video_id, 'day', day, 'reward_micros', reward_micros,
                   'withheld_micros', withheld_micros, 'cap_micros', cap_micros, 'reason', reason, 'status', status,
                   'resolved_at', resolved_at, 'resolution_entry_id', resolution_entry_id, 'created_at', created_at) AS r,
                   '0' || lpad(id::text, 20, '0') AS k
              FROM withheld_rewards WHERE user_id = {_U}""",
        f"""SELECT json_build_object('relation', 'resolved_by_you', 'id', id, 'status', status, 'resolved_at', resolved_at) AS r,
                   '1' || lpad(id::text, 20, '0') AS k
              FROM withheld_rewards WHERE resolved_by = {_U} AND user_id <> {_U}""",
    ),
    "login_streaks": _section(
        "login_streaks",
        f"""SELECT json_build_object('last_login_date', last_login_date, 'streak_days', streak_days,
                   'longest_streak_days', longest_streak_days, 'updated_at', updated_at) AS r, '0' AS k
              FROM login_streaks WHERE user_id = {_U}""",
    ),
    "referral_qualifications": _section(
        "referral_qualifications",
        f"""SELECT json_build_object('relation', 'you_qualified', 'referrer_id', referrer_id, 'video_id', video_id,
                   'reward_entry_id', reward_entry_id, 'qualified_at', qualified_at) AS r, '0' AS k
              FROM referral_qualifications WHERE referred_user_id = {_U}""",
        f"""SELECT json_build_object('relation', 'referred_by_you', 'referred_user_id', referred_user_id,
                   'qualified_at', qualified_at) AS r,
                   '1' || qualified_at::text || referred_user_id::text AS k
              FROM referral_qualifications WHERE referrer_id = {_U}""",
    ),
    "pending_credits": _section(
        "pending_credits",
        f"""SELECT json_build_object('entry_id', entry_id, 'seq', seq, 'type', type, 'amount_micros', amount,
                   'clears_at', CASE WHEN clears_at < 'infinity' THEN clears_at END,
                   'awaiting', CASE WHEN awaiting IS NOT NULL THEN 'referral_qualification' END, 'created_at', created_at) AS r,
                   lpad(seq::text, 20, '0') AS k
              FROM pending_credits WHERE user_id = {_U}""",
    ),
    "partner_rewards": _section(
        "partner_rewards",
        f"""SELECT json_build_object('partner_id', partner_id, 'transaction_id', transaction_id, 'units', units,
                   'reward_micros', reward_micros, 'entry_id', entry_id, 'created_at', created_at, 'reversed_at', reversed_at,
                   'reversal_kind', reversal_kind) AS r,
                   created_at::text || partner_id || transaction_id AS k
              FROM partner_rewards WHERE user_id = {_U}""",
    ),
    "referrals": _section(
        "referrals",
        f"""SELECT json_build_object('relation', 'you_were_referred', 'referrer_id', referrer_id, 'status', status,
                   'expires_at', expires_at, 'qualified_at', qualified_at, 'expired_at', expired_at, 'created_at', created_at) AS r,
                   '0' AS k
              FROM referrals WHERE referred_user_id = {_U}""",
        f"""SELECT json_build_object('relation', 'referred_by_you', 'referred_user_id', referred_user_id, 'status', status,
                   'expires_at', expires_at, 'qualified_at', qualified_at, 'expired_at', expired_at, 'created_at', created_at) AS r,
                   '1' || created_at::text || referred_user_id::text AS k
              FROM referrals WHERE referrer_id = {_U}""",
    ),
    "referral_daily_qualifications": _section(
        "referral_daily_qualifications",
        f"""SELECT json_build_object('day', day, 'qualified', qualified) AS r, day::text AS k
              FROM referral_daily_qualifications WHERE referrer_id = {_U}""",
    ),
    "kyc_documents": _section(
        "kyc_documents",
        f"""SELECT json_build_object('id', id, 'kind', kind, 'content_type', content_type, 'size_bytes', size_bytes, 'status', status,
                   'received_content_type', received_content_type, 'received_size_bytes', received_size_bytes,
                   'rejection_reason', rejection_reason, 'review_id', review_id, 'created_at', created_at, 'uploaded_at', uploaded_at,
                   'rejected_at', rejected_at, 'deleted_at', deleted_at) AS r, created_at::text || id::text AS k
              FROM kyc_documents WHERE user_id = {_U}""",
    ),
    "kyc_reviews": _section(
        "kyc_reviews",
        f"""SELECT json_build_object('relation', 'about_you', 'id', id, 'decision', decision, 'reason', reason,
                   'decided_at', decided_at) AS r,
                   '0' || lpad(id::text, 20, '0') AS k
              FROM kyc_reviews WHERE user_id = {_U}""",
        f"""SELECT json_build_object('relation', 'decided_by_you', 'id', id, 'decision', decision, 'decided_at', decided_at) AS r,
                   '1' || lpad(id::text, 20, '0') AS k
              FROM kyc_reviews WHERE reviewer_id = {_U} AND user_id <> {_U}""",
    ),
    "payout_methods": _section(
        "payout_methods",
        # the masked label only: the encrypted details never leave the database in an export
        f"""SELECT json_build_object('id', id, 'type', type, 'label', label, 'is_default', is_default, 'created_at', created_at,
                   'erased_at', erased_at) AS r, created_at::text || id::text AS k
              FROM payout_methods WHERE user_id = {_U}""",
    ),
    "payout_requests": _section(
        "payout_requests",
        f"""SELECT json_build_object('relation', 'yours', 'id', id, 'method_id', method_id, 'method_type', method_type,
                   'method_label', method_label, 'amount_cents', amount_cents, 'currency', currency, 'status', status,
                   'requested_at', requested_at, 'decided_at', decided_at, 'reject_reason', reject_reason, 'cancelled_at', cancelled_at,
                   'submitted_at', submitted_at, 'completed_at', completed_at, 'provider', provider,
                   'provider_reference', provider_reference, 'failure_code', failure_code, 'failure_message', failure_message,
                   'updated_at', updated_at) AS r, '0' || requested_at::text || id::text AS k
              FROM payout_requests WHERE user_id = {_U}""",
        f"""SELECT json_build_object('relation', 'decided_by_you', 'id', id, 'status', status, 'decided_at', decided_at) AS r,
                   '1' || requested_at::text || id::text AS k
              FROM payout_requests WHERE decided_by = {_U} AND user_id <> {_U}""",
    ),
    # no column of its own points at users: the events of the user's payouts
    "payout_events": _section(
        "payout_events",
        f"""SELECT json_build_object('id', e.id, 'payout_id', e.payout_id, 'from_state', e.from_state, 'to_state', e.to_state,
                   'by', CASE WHEN e.actor = 'system' THEN 'system' WHEN e.actor = p.user_id::text THEN 'you' ELSE 'staff' END,
                   'reason', e.reason, 'attempt', e.attempt, 'created_at', e.created_at) AS r, lpad(e.id::text, 20, '0') AS k
              FROM payout_events e JOIN payout_requests p ON p.id = e.payout_id
             WHERE p.user_id = {_U}""",
    ),
    "audit_log": _section(
        "audit_log",
        # what staff did about the user (not which staff member: the role says enough)
        f"""SELECT json_build_object('relation', 'about_you', 'id', id, 'actor_role', actor_role, 'action', action,
                   'target_type', target_type, 'target_id', target_id, 'before', before, 'after', after, 'reason', reason,
                   'created_at', created_at) AS r, '0' || lpad(id::text, 20, '0') AS k
              FROM audit_log WHERE subject_user_id = {_U}""",
        # what the user did as staff, without the other person's before/after
        f"""SELECT json_build_object('relation', 'by_you', 'id', id, 'actor_role', actor_role, 'action', action,
                   'target_type', target_type, 'target_id', target_id, 'created_at', created_at) AS r,
                   '1' || lpad(id::text, 20, '0') AS k
              FROM audit_log WHERE actor_id = {_U} AND subject_user_id IS DISTINCT FROM {_U}""",
    ),
    "feature_flags": _section(
        "feature_flags",
        f"""SELECT json_build_object('relation', 'last_changed_by_you', 'key', key, 'enabled', enabled,
                   'rollout_percent', rollout_percent, 'updated_at', updated_at) AS r, key AS k
              FROM feature_flags WHERE updated_by = {_U}""",
    ),
    # Trust and safety (docs/fraud.md): what was observed (addresses and networks; the device hash is
    # a keyed digest that means nothing outside EarnPay, so only whether one was recorded) and the
    # account's risk-state history (as subject, or as the staff who decided). Left out for the
    # subject, under the fraud-prevention exemption: the rules' scores and the staff's reasons about
    # their account, which would teach a farm where the thresholds are.
    "risk_observations": _section(
        "risk_observations",
        f"""SELECT json_build_object('id', id, 'kind', kind, 'ip', host(ip), 'network', prefix::text,
                   'device_recorded', device_hash IS NOT NULL, 'created_at', created_at) AS r, lpad(id::text, 20, '0') AS k
              FROM risk_observations WHERE user_id = {_U}""",
    ),
    "risk_transitions": _section(
        "risk_transitions",
        f"""SELECT json_build_object('relation', CASE WHEN user_id = {_U} THEN 'your_account' ELSE 'decided_by_you' END,
                   'from_state', from_state, 'to_state', to_state, 'actor_kind', actor_kind,
                   'reason', CASE WHEN actor_id = {_U} THEN reason END,
                   'created_at', created_at) AS r, lpad(id::text, 20, '0') AS k
              FROM risk_transitions WHERE user_id = {_U} OR actor_id = {_U}""",
    ),
    "risk_rules": _section(
        "risk_rules",
        f"""SELECT json_build_object('relation', 'last_changed_by_you', 'name', name, 'threshold', threshold,
                   'window_minutes', window_minutes, 'weight', weight, 'updated_at', updated_at) AS r, name AS k
              FROM risk_rules WHERE updated_by = {_U}""",
    ),
    "data_exports": _section(
        "data_exports",
        f"""SELECT json_build_object('id', id, 'status', status, 'requested_at', requested_at, 'ready_at', ready_at,
                   'expires_at', expires_at, 'deleted_at', deleted_at) AS r, requested_at::text || id::text AS k
              FROM data_exports WHERE user_id = {_U}""",
    ),
    # Issue 11: what we told you, your email links (never the tokens), your devices, your second factor
    # (never the secret or the recovery codes, only that they exist and when they were used).
    "notifications": _section(
        "notifications",
        f"""SELECT json_build_object('id', id, 'kind', kind, 'data', data, 'email_to', email_to, 'created_at', created_at,
                   'email_sent_at', email_sent_at) AS r, lpad(id::text, 20, '0') AS k
              FROM notifications WHERE user_id = {_U}""",
    ),
    "account_tokens": _section(
        "account_tokens",
        f"""SELECT json_build_object('id', id, 'purpose', purpose, 'new_email', new_email, 'created_at', created_at,
                   'expires_at', expires_at, 'used_at', used_at) AS r, lpad(id::text, 20, '0') AS k
              FROM account_tokens WHERE user_id = {_U}""",
    ),
    "known_devices": _section(
        "known_devices",
        f"""SELECT json_build_object('first_seen', first_seen) AS r, first_seen::text || encode(device_hash, 'hex') AS k
              FROM known_devices WHERE user_id = {_U}""",
    ),
    "user_mfa": _section(
        "user_mfa",
        f"""SELECT json_build_object('created_at', created_at, 'confirmed_at', confirmed_at) AS r, '0' AS k
              FROM user_mfa WHERE user_id = {_U}""",
    ),
    "mfa_recovery_codes": _section(
        "mfa_recovery_codes",
        f"""SELECT json_build_object('id', id, 'created_at', created_at, 'used_at', used_at) AS r, lpad(id::text, 20, '0') AS k
              FROM mfa_recovery_codes WHERE user_id = {_U}""",
    ),
}

# Tables that reference the user but are left out of their export on purpose, with the reason.
WITHHELD_FROM_EXPORT: dict[str, str] = {
    "risk_signals": "the rules' scores about the account: withheld under the fraud-prevention exemption (docs/fraud.md)",
}

# A consistent snapshot for the whole bundle.
SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"

# --- exports ---------------------------------------------------------------------------------------
_EXPORT_COLUMNS = """id::text AS id, user_id::text AS user_id, status, bucket, object_name, size_bytes, attempts, requested_at,
    ready_at, expires_at, deleted_at, (expires_at IS NOT NULL AND expires_at <= now()) AS expired"""

INSERT_EXPORT = Query(
    "privacy_insert_export",
    f"""INSERT INTO data_exports (user_id) VALUES (CAST(:user_id AS uuid))
        ON CONFLICT (user_id) WHERE status = 'queued' DO NOTHING
        RETURNING {_EXPORT_COLUMNS}""",
)

QUEUED_EXPORT = Query(
    "privacy_queued_export",
    f"SELECT {_EXPORT_COLUMNS} FROM data_exports WHERE user_id = CAST(:user_id AS uuid) AND status = 'queued'",
)

EXPORT_BY_ID = Query("privacy_export_by_id", f"SELECT {_EXPORT_COLUMNS} FROM data_exports WHERE id = CAST(:id AS uuid)")

USER_EXPORT = Query(
    "privacy_user_export",
    f"SELECT {_EXPORT_COLUMNS} FROM data_exports WHERE id = CAST(:id AS uuid) AND user_id = CAST(:user_id AS uuid)",
)

MARK_READY = Query(
    "privacy_mark_export_ready",
    """UPDATE data_exports
          SET status = 'ready', bucket = :bucket, object_name = :object_name, size_bytes = :size_bytes,
              attempts = attempts + 1, last_error = NULL, ready_at = now(), expires_at = now() + make_interval(days => :keep_days)
        WHERE id = CAST(:id AS uuid) AND status = 'queued'
        RETURNING id""",
)

MARK_ATTEMPT_FAILED = Query(
    "privacy_mark_export_attempt_failed",
    """UPDATE data_exports
          SET attempts = attempts + 1, last_error = :error,
              status = CASE WHEN attempts + 1 >= :max_attempts THEN 'failed' ELSE status END
        WHERE id = CAST(:id AS uuid) AND status = 'queued'
        RETURNING status""",
)

PENDING_EXPORTS = Query(
    "privacy_pending_exports",
    """SELECT id::text AS id FROM data_exports
        WHERE status = 'queued' AND requested_at <= now() - make_interval(secs => :min_age_s)
        ORDER BY requested_at LIMIT :limit""",
)

# --- erasure ---------------------------------------------------------------------------------------
LOCK_USER = Query(
    "privacy_lock_user",
    "SELECT id::text AS id, email, role, status FROM users WHERE id = CAST(:user_id AS uuid) FOR UPDATE",
)

PAYOUTS_IN_FLIGHT = Query(
    "privacy_payouts_in_flight",
    """SELECT count(*) FROM payout_requests
        WHERE user_id = CAST(:user_id AS uuid) AND status IN ('requested', 'approved', 'submitted')""",
)

ERASE_USER = Query(
    "privacy_erase_user",
    """UPDATE users
          SET email = :email, display_name = 'Erased user', password_hash = :password_hash, referral_code = :referral_code,
              status = 'erased', erased_at = now(), updated_at = now()
        WHERE id = CAST(:user_id AS uuid)
        RETURNING erased_at""",
)

ERASE_SESSIONS = Query(
    "privacy_erase_sessions",
    """UPDATE sessions
          SET revoked_at = coalesce(revoked_at, now()), revoked_reason = coalesce(revoked_reason, 'erased'), ip = NULL, user_agent = NULL
        WHERE user_id = CAST(:user_id AS uuid)""",
)

# by user and by the address typed (failed attempts before the account existed carry no user id)
ERASE_LOGIN_ATTEMPTS = Query(
    "privacy_erase_login_attempts",
    """UPDATE login_attempts SET email = :pseudonym, ip = NULL
        WHERE user_id = CAST(:user_id AS uuid) OR email = :email""",
)

# Trust and safety signals (docs/fraud.md): the addresses and the device hashes go; the kinds and
# times stay (counts the rules and staff history refer to).
ERASE_RISK_OBSERVATIONS = Query(
    "privacy_erase_risk_observations",
    "UPDATE risk_observations SET ip = NULL, prefix = NULL, device_hash = NULL WHERE user_id = CAST(:user_id AS uuid)",
)
# Issue 11: notifications (addresses, IPs, user agents), email tokens (a new address), known devices
# and the second factor go entirely; nothing in them is needed once the account is gone.
DELETE_NOTIFICATIONS = Query("privacy_delete_notifications", "DELETE FROM notifications WHERE user_id = CAST(:user_id AS uuid)")
DELETE_ACCOUNT_TOKENS = Query("privacy_delete_account_tokens", "DELETE FROM account_tokens WHERE user_id = CAST(:user_id AS uuid)")
DELETE_KNOWN_DEVICES = Query("privacy_delete_known_devices", "DELETE FROM known_devices WHERE user_id = CAST(:user_id AS uuid)")
DELETE_RECOVERY_CODES = Query("privacy_delete_recovery_codes", "DELETE FROM mfa_recovery_codes WHERE user_id = CAST(:user_id AS uuid)")
DELETE_MFA = Query("privacy_delete_mfa", "DELETE FROM user_mfa WHERE user_id = CAST(:user_id AS uuid)")

DELETE_IDEMPOTENCY_KEYS = Query("privacy_delete_idempotency_keys", "DELETE FROM idempotency_keys WHERE user_id = CAST(:user_id AS uuid)")

_ERASED_LABEL = "CASE type WHEN 'paypal' THEN 'PayPal (erased)' ELSE 'Bank account (erased)' END"

ERASE_PAYOUT_METHODS = Query(
    "privacy_erase_payout_methods",
    f"""UPDATE payout_methods SET details = NULL, destination_fingerprint = NULL, erased_at = coalesce(erased_at, now()),
               is_default = false, label = {_ERASED_LABEL}
         WHERE user_id = CAST(:user_id AS uuid)""",
)

# The records stay (amounts, states, dates); the snapshot of the destination's label and any
# provider message (which may quote the destination) go.
ERASE_PAYOUT_REQUESTS = Query(
    "privacy_erase_payout_requests",
    """UPDATE payout_requests
          SET method_label = CASE method_type WHEN 'paypal' THEN 'PayPal (erased)' ELSE 'Bank account (erased)' END,
              failure_message = CASE WHEN failure_message IS NULL THEN NULL ELSE '[erased]' END,
              last_error = CASE WHEN last_error IS NULL THEN NULL ELSE '[erased]' END
        WHERE user_id = CAST(:user_id AS uuid)""",
)

ERASE_KYC_DOCUMENTS = Query(
    "privacy_erase_kyc_documents",
    """UPDATE kyc_documents
          SET status = 'deleted', deleted_at = coalesce(deleted_at, now()), md5_hash = NULL, crc32c = NULL, rejection_reason = NULL
        WHERE user_id = CAST(:user_id AS uuid)
        RETURNING bucket, object_name""",
)

ERASE_EXPORTS = Query(
    "privacy_erase_exports",
    """UPDATE data_exports SET status = 'deleted', deleted_at = now()
        WHERE user_id = CAST(:user_id AS uuid) AND status <> 'deleted'
        RETURNING bucket, object_name""",
)
