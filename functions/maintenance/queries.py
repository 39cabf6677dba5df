"""SQL of the maintenance tasks. Identifiers in DDL (ANALYZE, REINDEX) come from the catalog and are
quoted with format('%I') by PostgreSQL itself; values are always bound parameters."""

from shared.db import Query

# --- locks ----------------------------------------------------------------------------------------
TRY_LOCK = Query("maint_try_lock", "SELECT pg_try_advisory_lock(:ns, :key)", prepared=False)
UNLOCK = Query("maint_unlock", "SELECT pg_advisory_unlock(:ns, :key)", prepared=False)

# --- analyze / reindex ----------------------------------------------------------------------------
# Ordinary and partitioned tables of the public schema (a partitioned parent's statistics are
# never gathered by autovacuum: ANALYZE on the parent samples every partition).
TABLES = Query(
    "maint_tables",
    """SELECT c.relname AS name, c.relkind = 'p' AS partitioned, format('%I.%I', n.nspname, c.relname) AS qualified
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
        ORDER BY c.relname""",
    prepared=False,
)

# The leaves to REINDEX for one table: itself, or each of its partitions.
REINDEX_TARGETS = Query(
    "maint_reindex_targets",
    """SELECT format('%I.%I', n.nspname, c.relname) AS qualified, c.relname AS name,
              pg_total_relation_size(c.oid) - pg_relation_size(c.oid) AS index_bytes
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r'
          AND (c.relname = :table OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass(:qualified)))
        ORDER BY c.relname""",
    prepared=False,
)

# What an interrupted REINDEX CONCURRENTLY leaves behind: invalid copies named *_ccnew / *_ccold.
LEFTOVER_INDEXES = Query(
    "maint_leftover_indexes",
    """SELECT format('%I.%I', n.nspname, c.relname) AS qualified
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND NOT i.indisvalid AND c.relname ~ '_cc(new|old)[0-9]*$'""",
    prepared=False,
)

INDEX_BYTES = Query(
    "maint_index_bytes",
    "SELECT pg_total_relation_size(to_regclass(:qualified)) - pg_relation_size(to_regclass(:qualified))",
    prepared=False,
)

# --- session purge ----------------------------------------------------------------------------------
# Each statement deletes one bounded batch; rows another transaction holds are left for next time.
PURGE_SESSIONS = Query(
    "maint_purge_sessions",
    """DELETE FROM sessions WHERE id IN (
           SELECT id FROM sessions
            WHERE least(expires_at, last_seen_at + idle_timeout, coalesce(revoked_at, 'infinity'))
                  < now() - make_interval(days => :days)
            LIMIT :batch FOR UPDATE SKIP LOCKED)""",
    prepared=False,
)
PURGE_LOGIN_ATTEMPTS = Query(
    "maint_purge_login_attempts",
    """DELETE FROM login_attempts WHERE id IN (
           SELECT id FROM login_attempts WHERE created_at < now() - make_interval(days => :days)
            LIMIT :batch FOR UPDATE SKIP LOCKED)""",
    prepared=False,
)
PURGE_IDEMPOTENCY_KEYS = Query(
    "maint_purge_idempotency_keys",
    """DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(
           SELECT ctid FROM idempotency_keys WHERE created_at < now() - make_interval(days => :days)
            LIMIT :batch FOR UPDATE SKIP LOCKED))""",
    prepared=False,
)
# A counter whose window started more than a day ago can never count again (the longest window is an hour).
PURGE_RATE_LIMITS = Query(
    "maint_purge_rate_limits",
    """DELETE FROM rate_limits WHERE bucket IN (
           SELECT bucket FROM rate_limits WHERE window_start < now() - interval '1 day'
            LIMIT :batch FOR UPDATE SKIP LOCKED)""",
    prepared=False,
)

# --- reconcile ---------------------------------------------------------------------------------------
# Beyond ledger.verify (chains; balance = sum of entries, count, newest hash): lifetime earned
# equals the sum of POSITIVE earning entries (gross, migration 0019) less reversals (clawback of
# pending credits, migration 0060), and nothing is negative.
LIFETIME_PROBLEMS = Query(
    "maint_lifetime_problems",
    """SELECT b.user_id::text AS user_id, b.lifetime_earned, coalesce(s.earned, 0) AS entries_earned
         FROM balances b
         LEFT JOIN (SELECT user_id, sum(amount) AS earned FROM earnings
                     WHERE (ledger_is_earning(type) AND amount > 0) OR type IN ('reversal', 'recovery') GROUP BY user_id) s
           USING (user_id)
        WHERE b.lifetime_earned <> coalesce(s.earned, 0)
        LIMIT :max_rows""",
    prepared=False,
)
NEGATIVES = Query(
    "maint_negatives",
    """SELECT (SELECT count(*) FROM balances
                WHERE available < 0 OR pending < 0 OR held < 0 OR recovery < 0 OR lifetime_earned < 0 OR lifetime_paid_out < 0)
                  AS negative_balances,
              (SELECT count(*) FROM earnings WHERE balance_after < 0 OR pending_after < 0 OR held_after < 0) AS negative_entries""",
    prepared=False,
)
