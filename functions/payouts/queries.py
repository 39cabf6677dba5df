"""SQL of the payouts area: methods, requests, their events, and the batch worker's claims."""

from shared.db import Query

# --- payout methods ---------------------------------------------------------------------------------
_METHOD_COLUMNS = "id::text AS id, type, label, is_default, created_at"

LOCK_USER_METHODS = Query(
    "payout_methods_lock_user",
    # serialises method changes of one user (the per-user cap and the single default)
    "SELECT pg_advisory_xact_lock(hashtextextended('payout_methods:' || :user_id, 0))",
)

COUNT_METHODS = Query(
    "payout_methods_count",
    "SELECT count(*) FROM payout_methods WHERE user_id = CAST(:user_id AS uuid) AND erased_at IS NULL",
)

CLEAR_DEFAULT_METHOD = Query(
    "payout_methods_clear_default",
    "UPDATE payout_methods SET is_default = false WHERE user_id = CAST(:user_id AS uuid) AND is_default",
)

INSERT_METHOD = Query(
    "payout_methods_insert",
    f"""INSERT INTO payout_methods (id, user_id, type, label, details, is_default, destination_fingerprint)
        VALUES (CAST(:id AS uuid), CAST(:user_id AS uuid), :type, :label, CAST(:details AS jsonb), :is_default, :fingerprint)
        RETURNING {_METHOD_COLUMNS}""",
)

LIST_METHODS = Query(
    "payout_methods_list",
    f"""SELECT {_METHOD_COLUMNS} FROM payout_methods
         WHERE user_id = CAST(:user_id AS uuid) AND erased_at IS NULL
         ORDER BY created_at, id""",
)

GET_METHOD = Query(
    "payout_methods_get",
    f"""SELECT {_METHOD_COLUMNS} FROM payout_methods
         WHERE id = CAST(:id AS uuid) AND user_id = CAST(:user_id AS uuid) AND erased_at IS NULL""",
)

DEFAULT_METHOD = Query(
    "payout_methods_default",
    f"""SELECT {_METHOD_COLUMNS} FROM payout_methods
         WHERE user_id = CAST(:user_id AS uuid) AND is_default AND erased_at IS NULL""",
)

SET_DEFAULT_METHOD = Query(
    "payout_methods_set_default",
    f"""UPDATE payout_methods SET is_default = true
         WHERE id = CAST(:id AS uuid) AND user_id = CAST(:user_id AS uuid) AND erased_at IS NULL
        RETURNING {_METHOD_COLUMNS}""",
)

# Payouts that still need the method's details (the batch decrypts them when it submits).
METHOD_PAYOUTS_IN_FLIGHT = Query(
    "payout_methods_in_flight",
    """SELECT count(*) FROM payout_requests
        WHERE user_id = CAST(:user_id AS uuid) AND method_id = CAST(:id AS uuid)
          AND status IN ('requested', 'approved', 'submitted')""",
)

# Removal destroys the envelope (crypto-shredding: the data key goes with it); the masked label stays,
# as it does on the payouts that used the method.
REMOVE_METHOD = Query(
    "payout_methods_remove",
    """UPDATE payout_methods SET details = NULL, erased_at = now(), is_default = false
        WHERE id = CAST(:id AS uuid) AND user_id = CAST(:user_id AS uuid) AND erased_at IS NULL
        RETURNING erased_at""",
)

NEWEST_METHOD = Query(
    "payout_methods_newest",
    f"""SELECT {_METHOD_COLUMNS} FROM payout_methods
         WHERE user_id = CAST(:user_id AS uuid) AND erased_at IS NULL
         ORDER BY created_at DESC, id DESC LIMIT 1""",
)

# --- payout requests --------------------------------------------------------------------------------
# FOR SHARE: an erasure or a block running now finishes first, and a request never slips in beside it.
USER_ELIGIBILITY = Query(
    "payout_user_eligibility",
    """SELECT status, kyc_status, risk_state, email_verified_at IS NOT NULL AS email_verified
         FROM users WHERE id = CAST(:user_id AS uuid) FOR SHARE""",
)

_PAYOUT_COLUMNS = """p.id::text AS id, p.user_id::text AS user_id, p.method_id::text AS method_id, p.method_type, p.method_label,
    p.amount_cents, p.currency, p.status, p.requested_at, p.decided_at, p.decided_by::text AS decided_by, p.reject_reason,
    p.cancelled_at, p.submitted_at, p.completed_at, p.updated_at, p.attempts, p.provider, p.provider_reference,
    p.provider_status, p.failure_code, p.failure_message, p.last_error, p.claimed_at, p.claimed_by, p.next_check_at"""

INSERT_PAYOUT = Query(
    "payout_insert",
    f"""INSERT INTO payout_requests AS p (id, user_id, method_id, method_type, method_label, amount_cents, currency,
                                         idempotency_key, last_actor, last_reason)
        VALUES (CAST(:id AS uuid), CAST(:user_id AS uuid), CAST(:method_id AS uuid), :method_type, :method_label,
                :amount_cents, :currency, :idempotency_key, :actor, 'requested by the user')
        ON CONFLICT (id) DO NOTHING
        RETURNING {_PAYOUT_COLUMNS}""",
)

GET_PAYOUT = Query("payout_get", f"SELECT {_PAYOUT_COLUMNS} FROM payout_requests p WHERE p.id = CAST(:id AS uuid)")

GET_USER_PAYOUT = Query(
    "payout_get_for_user",
    f"SELECT {_PAYOUT_COLUMNS} FROM payout_requests p WHERE p.id = CAST(:id AS uuid) AND p.user_id = CAST(:user_id AS uuid)",
)

LOCK_PAYOUT = Query(
    "payout_lock",
    f"SELECT {_PAYOUT_COLUMNS} FROM payout_requests p WHERE p.id = CAST(:id AS uuid) FOR UPDATE",
)

# Newest first; the cursor is the last row's (requested_at, id).
LIST_USER_PAYOUTS = Query(
    "payout_list_for_user",
    f"""SELECT {_PAYOUT_COLUMNS} FROM payout_requests p
         WHERE p.user_id = CAST(:user_id AS uuid)
           AND (CAST(:status AS text) IS NULL OR p.status = CAST(:status AS text))
           AND (CAST(:after_at AS timestamptz) IS NULL
                OR (p.requested_at, p.id) < (CAST(:after_at AS timestamptz), CAST(:after_id AS uuid)))
         ORDER BY p.requested_at DESC, p.id DESC
         LIMIT :limit""",
)

PAYOUT_EVENTS = Query(
    "payout_events_of",
    """SELECT from_state, to_state, actor, reason, attempt, created_at FROM payout_events
        WHERE payout_id = CAST(:id AS uuid) ORDER BY id""",
)

# Staff review queue: oldest first, with who asked.
LIST_FOR_REVIEW = Query(
    "payout_list_for_review",
    f"""SELECT {_PAYOUT_COLUMNS}, u.email AS user_email, u.status AS user_status, u.kyc_status AS user_kyc_status
          FROM payout_requests p JOIN users u ON u.id = p.user_id
         WHERE p.status = :status
           AND (CAST(:after_at AS timestamptz) IS NULL
                OR (p.requested_at, p.id) > (CAST(:after_at AS timestamptz), CAST(:after_id AS uuid)))
         ORDER BY p.requested_at, p.id
         LIMIT :limit""",
)

# Each status change is conditional on the state it leaves: of two racing changes (cancel against
# approve, two workers recording one outcome) exactly one matches, the other updates nothing.
CANCEL_PAYOUT = Query(
    "payout_cancel",
    f"""UPDATE payout_requests p SET status = 'cancelled', cancelled_at = now(), completed_at = now(),
               updated_at = now(), last_actor = :actor, last_reason = 'cancelled by the user'
         WHERE p.id = CAST(:id AS uuid) AND p.user_id = CAST(:user_id AS uuid) AND p.status = 'requested'
        RETURNING {_PAYOUT_COLUMNS}""",
)

APPROVE_PAYOUT = Query(
    "payout_approve",
    f"""UPDATE payout_requests p SET status = 'approved', decided_at = now(), decided_by = CAST(:staff_id AS uuid),
               updated_at = now(), last_actor = :actor, last_reason = 'approved'
         WHERE p.id = CAST(:id AS uuid) AND p.status = 'requested'
        RETURNING {_PAYOUT_COLUMNS}""",
)

REJECT_PAYOUT = Query(
    "payout_reject",
    f"""UPDATE payout_requests p SET status = 'rejected', decided_at = now(), decided_by = CAST(:staff_id AS uuid),
               reject_reason = :reason, completed_at = now(), updated_at = now(), last_actor = :actor, last_reason = :actor_reason
         WHERE p.id = CAST(:id AS uuid) AND p.status = 'requested'
        RETURNING {_PAYOUT_COLUMNS}""",
)

# --- the batch worker -------------------------------------------------------------------------------
# Claims: one statement each, rows locked with SKIP LOCKED so concurrent workers take disjoint sets,
# then marked submitted with a lease (next_check_at) before the claim transaction commits.
_CLAIMED_COLUMNS = """p.id::text AS id, p.user_id::text AS user_id, p.amount_cents, p.currency, p.method_type, p.attempts,
    p.provider_reference, p.provider_status, m.details"""

CLAIM_DUE = Query(
    "payout_claim_due",
    f"""WITH due AS (
            SELECT id FROM payout_requests
             WHERE status = 'submitted' AND next_check_at <= now()
             ORDER BY next_check_at
             LIMIT :limit
               FOR UPDATE SKIP LOCKED
        )
        UPDATE payout_requests p
           SET claimed_at = now(), claimed_by = :worker, attempts = p.attempts + 1,
               next_check_at = now() + make_interval(secs => :lease_s),
               updated_at = now(), last_actor = 'system', last_reason = 'retry or status check with the same payout id'
          FROM due, payout_methods m
         WHERE p.id = due.id AND m.id = p.method_id
        RETURNING {_CLAIMED_COLUMNS}""",
)

CLAIM_APPROVED = Query(
    "payout_claim_approved",
    f"""WITH picked AS (
            SELECT id FROM payout_requests pr
             WHERE status = 'approved'
               -- an account in review (or suspended, banned) keeps its approved payouts waiting (docs/fraud.md)
               AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = pr.user_id AND u.risk_state IN ('review', 'suspended', 'banned'))
             ORDER BY requested_at, id
             LIMIT :limit
               FOR UPDATE SKIP LOCKED
        )
        UPDATE payout_requests p
           SET status = 'submitted', submitted_at = now(), claimed_at = now(), claimed_by = :worker,
               attempts = p.attempts + 1, provider = :provider, next_check_at = now() + make_interval(secs => :lease_s),
               updated_at = now(), last_actor = 'system', last_reason = 'claimed by a batch worker'
          FROM picked, payout_methods m
         WHERE p.id = picked.id AND m.id = p.method_id
        RETURNING {_CLAIMED_COLUMNS}""",
)

# Outcomes arrive as one JSON array per kind, so recording a whole batch is a few statements.
# Paid: the state change and the ledger's payout_paid entry of each payout in one statement (one
# call of ledger_settle_payout() per payout, in user order so concurrent workers never deadlock):
# the paid amount leaves the held bucket and lifetime paid out is the sum of those entries.
RECORD_PAID = Query(
    "payout_record_paid",
    """WITH r AS (
           SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(id uuid, reference text, raw_status text)
       ), done AS (
           UPDATE payout_requests p
              SET status = 'paid', completed_at = now(), provider_reference = coalesce(r.reference, p.provider_reference),
                  provider_status = 'paid', last_error = NULL, next_check_at = NULL,
                  updated_at = now(), last_actor = 'system', last_reason = 'paid by the provider'
             FROM r
            WHERE p.id = r.id AND p.status = 'submitted'
           RETURNING p.id, p.user_id, p.amount_cents
       ), settled AS (
           SELECT ledger_settle_payout(user_id, id, CAST(amount_cents * :micros_per_cent AS bigint)) AS entry_id
             FROM (SELECT * FROM done ORDER BY user_id, id) ordered
       )
       SELECT (SELECT count(*) FROM done) AS paid, (SELECT count(*) FROM settled) AS settled,
              -- the payouts this call marked paid: each one's user is notified in this transaction
              (SELECT coalesce(json_agg(json_build_object('id', id, 'user_id', user_id, 'amount_cents', amount_cents)), '[]')::text
                 FROM done) AS done_rows""",
)

RECORD_FAILED = Query(
    "payout_record_failed",
    """UPDATE payout_requests p
          SET status = 'failed', completed_at = now(), provider_reference = coalesce(:reference, p.provider_reference),
              provider_status = 'failed', failure_code = :failure_code, failure_message = :failure_message,
              next_check_at = NULL, updated_at = now(), last_actor = 'system', last_reason = :reason
        WHERE p.id = CAST(:id AS uuid) AND p.status = 'submitted'
       RETURNING p.id::text AS id, p.user_id::text AS user_id, p.amount_cents""",
)

# Pending or unknown (transient error): stays submitted, due again at next_check_at.
RECORD_NOT_FINAL = Query(
    "payout_record_not_final",
    """UPDATE payout_requests p
          SET provider_reference = coalesce(r.reference, p.provider_reference),
              provider_status = coalesce(r.provider_status, p.provider_status),
              last_error = r.error, updated_at = now(), next_check_at = now() + make_interval(secs => r.retry_s)
         FROM jsonb_to_recordset(CAST(:rows AS jsonb))
              AS r(id uuid, reference text, provider_status text, error text, retry_s double precision)
        WHERE p.id = r.id AND p.status = 'submitted'""",
)
