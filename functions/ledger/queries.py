"""SQL of the ledger: every write goes through the database function ledger_post()."""

from shared.db import Query

POST = Query(
    "ledger_post",
    """SELECT entry_id, entry_seq, entry_balance_after, entry_created_at, duplicate
         FROM ledger_post(CAST(:user_id AS uuid), :type, CAST(:amount AS bigint), :key, :source, :reference, CAST(:metadata AS jsonb))""",
)

RECORD_PAID_OUT = Query("ledger_record_paid_out", "SELECT ledger_record_paid_out(CAST(:user_id AS uuid), CAST(:amount AS bigint))")

BALANCE = Query(
    "ledger_balance",
    """SELECT available, lifetime_earned, lifetime_paid_out, entry_count, updated_at
         FROM balances WHERE user_id = CAST(:user_id AS uuid)""",
)

ENTRY_BY_KEY = Query(
    "ledger_entry_by_key",
    """SELECT id, seq, type, amount, balance_after, source, reference, created_at
         FROM earnings WHERE user_id = CAST(:user_id AS uuid) AND idempotency_key = :key""",
)

_ZERO_HASH = "decode(repeat('00', 32), 'hex')"

# Chains: each entry's prev_hash is its predecessor's hash, its hash recomputes, balance_after is
# the running sum and seq has no gaps. Bounded by :user_id when given (NULL = every user).
CHAIN_PROBLEMS = Query(
    "ledger_chain_problems",
    f"""
    WITH e AS (
        SELECT user_id, seq, type, amount, balance_after, idempotency_key, created_at, prev_hash, hash,
               lag(hash) OVER w AS expected_prev, lag(seq) OVER w AS prev_seq, sum(amount) OVER w AS running
          FROM earnings
         WHERE CAST(:user_id AS uuid) IS NULL OR user_id = CAST(:user_id AS uuid)
        WINDOW w AS (PARTITION BY user_id ORDER BY seq)
    )
    SELECT user_id::text AS user_id, seq, problem FROM (
        SELECT user_id, seq,
               CASE
                 WHEN seq <> coalesce(prev_seq, 0) + 1 THEN 'seq_gap'
                 WHEN prev_hash <> coalesce(expected_prev, {_ZERO_HASH}) THEN 'prev_hash_mismatch'
                 WHEN hash <> ledger_entry_hash(prev_hash, user_id, seq, type, amount, balance_after, idempotency_key, created_at)
                   THEN 'hash_mismatch'
                 WHEN balance_after <> running THEN 'balance_after_mismatch'
               END AS problem
          FROM e
    ) checked
    WHERE problem IS NOT NULL
    ORDER BY user_id, seq
    LIMIT :max_rows
    """,
    prepared=False,
)

# Balances: the carried balance equals the sum of the entries, the count and newest hash agree,
# and nothing is negative (the CHECK constraints make the last one impossible; we look anyway).
BALANCE_PROBLEMS = Query(
    "ledger_balance_problems",
    f"""
    SELECT b.user_id::text AS user_id, b.available, coalesce(s.total, 0) AS entries_total,
           b.entry_count, coalesce(s.n, 0) AS entries_count
      FROM balances b
      LEFT JOIN (
            SELECT user_id, sum(amount) AS total, count(*) AS n, (array_agg(hash ORDER BY seq DESC))[1] AS last_hash
              FROM earnings
             WHERE CAST(:user_id AS uuid) IS NULL OR user_id = CAST(:user_id AS uuid)
             GROUP BY user_id
      ) s USING (user_id)
     WHERE (CAST(:user_id AS uuid) IS NULL OR b.user_id = CAST(:user_id AS uuid))
       AND (b.available <> coalesce(s.total, 0)
            OR b.entry_count <> coalesce(s.n, 0)
            OR b.last_entry_hash <> coalesce(s.last_hash, {_ZERO_HASH})
            OR b.available < 0 OR b.lifetime_earned < 0 OR b.lifetime_paid_out < 0)
     LIMIT :max_rows
    """,
    prepared=False,
)

LEDGER_TOTALS = Query(
    "ledger_totals",
    "SELECT (SELECT count(*) FROM earnings) AS entries, (SELECT count(*) FROM balances) AS balances",
    prepared=False,
)
