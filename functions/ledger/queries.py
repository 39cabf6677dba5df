"""SQL of the ledger: every write goes through the database function ledger_post()."""

from shared.db import Query

POST = Query(
    "ledger_post",
    """SELECT entry_id, entry_seq, entry_balance_after, entry_created_at, duplicate
         FROM ledger_post(CAST(:user_id AS uuid), :type, CAST(:amount AS bigint), :key, :source, :reference, CAST(:metadata AS jsonb))""",
)

POST_PENDING = Query(
    "ledger_post_pending",
    """SELECT entry_id, entry_seq, entry_balance_after, entry_created_at, duplicate
         FROM ledger_post_pending(CAST(:user_id AS uuid), :type, CAST(:amount AS bigint), :key, :source, :reference,
                                  CAST(:metadata AS jsonb), CAST(:clears_at AS timestamptz), :awaiting)""",
)

SETTLE_PAYOUT = Query(
    "ledger_settle_payout",
    "SELECT ledger_settle_payout(CAST(:user_id AS uuid), CAST(:payout_id AS uuid), CAST(:amount AS bigint))",
)

REVERSE = Query(
    "ledger_reverse",
    """SELECT entry_id, entry_seq, entry_balance_after, entry_created_at, duplicate, reversed_amount
         FROM ledger_reverse(CAST(:user_id AS uuid), CAST(:entry_id AS bigint), :source, CAST(:metadata AS jsonb))""",
)

RECOVER = Query(
    "ledger_recover",
    """SELECT entry_id, entry_seq, entry_balance_after, entry_created_at, duplicate, reversed_amount, recovered
         FROM ledger_recover(CAST(:user_id AS uuid), CAST(:entry_id AS bigint), :source, CAST(:metadata AS jsonb))""",
)

SETTLE_AWAITING = Query(
    "ledger_settle_awaiting",
    "SELECT ledger_settle_awaiting(:awaiting, CAST(:clears_at AS timestamptz), CAST(:metadata AS jsonb))",
)

CLEAR_DUE = Query("ledger_clear_due", "SELECT ledger_clear_due(CAST(:limit AS int), CAST(:now AS timestamptz))", prepared=False)

BALANCE = Query(
    "ledger_balance",
    """SELECT available, pending, held, lifetime_earned, lifetime_paid_out, entry_count, updated_at
         FROM balances WHERE user_id = CAST(:user_id AS uuid)""",
)

ENTRY_BY_KEY = Query(
    "ledger_entry_by_key",
    """SELECT id, seq, type, amount, balance_after, source, reference, created_at
         FROM earnings WHERE user_id = CAST(:user_id AS uuid) AND idempotency_key = :key""",
)

_ZERO_HASH = "decode(repeat('00', 32), 'hex')"

# Chains: each entry's prev_hash is its predecessor's hash, its hash recomputes (the bucket-aware
# hash for entries that carry pending_after/held_after, migration 0060), balance_after is the
# running sum of what the entries moved in and out of available, pending_after and held_after the
# same for their buckets, and seq has no gaps. Bounded by :user_id when given (NULL = every user).
CHAIN_PROBLEMS = Query(
    "ledger_chain_problems",
    f"""
    WITH e AS (
        SELECT x.user_id, x.seq, x.type, x.amount, x.balance_after, x.idempotency_key, x.created_at, x.prev_hash, x.hash,
               x.pending, x.pending_after, x.held_after, x.original_entry_id,
               lag(x.hash) OVER w AS expected_prev, lag(x.seq) OVER w AS prev_seq,
               sum(d.d_available) OVER w AS running, sum(d.d_pending) OVER w AS running_pending,
               sum(d.d_held) OVER w AS running_held
          FROM earnings x CROSS JOIN LATERAL ledger_bucket_deltas(x.type, x.amount, x.pending) d
         WHERE CAST(:user_id AS uuid) IS NULL OR x.user_id = CAST(:user_id AS uuid)
        WINDOW w AS (PARTITION BY x.user_id ORDER BY x.seq)
    )
    SELECT user_id::text AS user_id, seq, problem FROM (
        SELECT user_id, seq,
               CASE
                 WHEN seq <> coalesce(prev_seq, 0) + 1 THEN 'seq_gap'
                 WHEN prev_hash <> coalesce(expected_prev, {_ZERO_HASH}) THEN 'prev_hash_mismatch'
                 WHEN hash <> CASE WHEN pending_after IS NULL
                                   THEN ledger_entry_hash(prev_hash, user_id, seq, type, amount, balance_after, idempotency_key, created_at)
                                   ELSE ledger_entry_hash_v2(prev_hash, user_id, seq, type, amount, balance_after, idempotency_key,
                                                             created_at, pending_after, held_after, pending, original_entry_id) END
                   THEN 'hash_mismatch'
                 WHEN balance_after <> running THEN 'balance_after_mismatch'
                 WHEN pending_after <> running_pending THEN 'pending_after_mismatch'
                 WHEN held_after <> running_held THEN 'held_after_mismatch'
               END AS problem
          FROM e
    ) checked
    WHERE problem IS NOT NULL
    ORDER BY user_id, seq
    LIMIT :max_rows
    """,
    prepared=False,
)

# Balances: every bucket equals the sum of what the entries moved in and out of it, lifetime paid
# out equals the payout_paid entries, pending equals the rows still waiting to clear, the count and
# newest hash agree, and nothing is negative (CHECKs make the last impossible; we look anyway).
BALANCE_PROBLEMS = Query(
    "ledger_balance_problems",
    f"""
    SELECT b.user_id::text AS user_id, b.available, coalesce(s.available, 0) AS entries_available,
           b.pending, coalesce(s.pending, 0) AS entries_pending, coalesce(pc.total, 0) AS pending_rows_total,
           b.held, coalesce(s.held, 0) AS entries_held,
           b.lifetime_paid_out, coalesce(s.paid_out, 0) AS entries_paid_out,
           b.entry_count, coalesce(s.n, 0) AS entries_count
      FROM balances b
      LEFT JOIN (
            SELECT x.user_id, sum(d.d_available) AS available, sum(d.d_pending) AS pending, sum(d.d_held) AS held,
                   -sum(x.amount) FILTER (WHERE x.type = 'payout_paid') AS paid_out,
                   count(*) AS n, (array_agg(x.hash ORDER BY x.seq DESC))[1] AS last_hash
              FROM earnings x CROSS JOIN LATERAL ledger_bucket_deltas(x.type, x.amount, x.pending) d
             WHERE CAST(:user_id AS uuid) IS NULL OR x.user_id = CAST(:user_id AS uuid)
             GROUP BY x.user_id
      ) s USING (user_id)
      LEFT JOIN (
            SELECT user_id, sum(amount) AS total FROM pending_credits
             WHERE CAST(:user_id AS uuid) IS NULL OR user_id = CAST(:user_id AS uuid)
             GROUP BY user_id
      ) pc USING (user_id)
     WHERE (CAST(:user_id AS uuid) IS NULL OR b.user_id = CAST(:user_id AS uuid))
       AND (b.available <> coalesce(s.available, 0)
            OR b.pending <> coalesce(s.pending, 0)
            OR b.pending <> coalesce(pc.total, 0)
            OR b.held <> coalesce(s.held, 0)
            OR b.lifetime_paid_out <> coalesce(s.paid_out, 0)
            OR b.entry_count <> coalesce(s.n, 0)
            OR b.last_entry_hash <> coalesce(s.last_hash, {_ZERO_HASH})
            OR b.available < 0 OR b.pending < 0 OR b.held < 0 OR b.lifetime_earned < 0 OR b.lifetime_paid_out < 0)
     LIMIT :max_rows
    """,
    prepared=False,
)

# Settlement against the payouts: every paid payout has exactly its payout_paid entry, and every
# payout_paid entry (but the previous release's, keyed payout_paid:legacy:...) belongs to a paid payout.
PAYOUT_PROBLEMS = Query(
    "ledger_payout_problems",
    """
    SELECT coalesce(p.user_id, e.user_id)::text AS user_id, coalesce(p.id::text, e.reference) AS payout_id,
           p.status, p.amount_cents, e.amount AS entry_amount
      FROM (SELECT id, user_id, status, amount_cents FROM payout_requests
             WHERE status = 'paid' AND (CAST(:user_id AS uuid) IS NULL OR user_id = CAST(:user_id AS uuid))) p
      FULL JOIN (SELECT user_id, reference, amount FROM earnings
                  WHERE type = 'payout_paid' AND idempotency_key NOT LIKE 'payout_paid:legacy:%'
                    AND (CAST(:user_id AS uuid) IS NULL OR user_id = CAST(:user_id AS uuid))) e
        ON e.user_id = p.user_id AND e.reference = p.id::text
     WHERE p.id IS NULL OR e.amount IS NULL OR e.amount <> -p.amount_cents * 10000
     LIMIT :max_rows
    """,
    prepared=False,
)

LEDGER_TOTALS = Query(
    "ledger_totals",
    "SELECT (SELECT count(*) FROM earnings) AS entries, (SELECT count(*) FROM balances) AS balances",
    prepared=False,
)

# The recovery bucket (migration 0110): what a user owes back equals the sum of what the recovery and
# recovery_payment entries moved, and is never negative.
RECOVERY_PROBLEMS = Query(
    "ledger_recovery_problems",
    """
    SELECT b.user_id::text AS user_id, b.recovery, coalesce(s.recovery, 0) AS entries_recovery
      FROM balances b
      LEFT JOIN (
            SELECT x.user_id, sum(ledger_recovery_delta(x.type, x.amount)) AS recovery
              FROM earnings x
             WHERE x.type IN ('recovery', 'recovery_payment')
               AND (CAST(:user_id AS uuid) IS NULL OR x.user_id = CAST(:user_id AS uuid))
             GROUP BY x.user_id
      ) s USING (user_id)
     WHERE (CAST(:user_id AS uuid) IS NULL OR b.user_id = CAST(:user_id AS uuid))
       AND (b.recovery <> coalesce(s.recovery, 0) OR b.recovery < 0)
     LIMIT :max_rows
    """,
    prepared=False,
)
