"""SQL of the earnings function (history, stats, export): per-user, index-only reads."""

from shared.db import Query

# One entry as compact JSON text, the same in history pages and the export: money objects (the SQL
# format_micros is the Python rule, held together by a property test), RFC 3339 UTC timestamps with Z.
# Concatenated text rather than json_build_object, whose output has spaces around ':' and ','.
# type is quoted as it is (a CHECK holds it to lower-case identifiers: nothing to escape), which
# spares a to_json call per row; source and reference are free text and go through to_json.
ENTRY_JSON = """'{"seq":' || seq || ',"type":"' || type || '"'
    || ',"amount":{"micros":' || amount || ',"formatted":"' || format_micros(amount) || '","currency":"USD"}'
    || ',"balance_after":{"micros":' || balance_after || ',"formatted":"' || format_micros(balance_after) || '","currency":"USD"}'
    || ',"created_at":"' || to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '"'
    || ',"source":' || coalesce(to_json(source)::text, 'null') || ',"reference":' || coalesce(to_json(reference)::text, 'null') || '}'"""

# A history item: the entry, and whether it is still pending with its clearing time (null while it
# awaits a condition such as a referral's qualification; docs/ledger.md, buckets).
HISTORY_ENTRY_JSON = (
    ENTRY_JSON[: ENTRY_JSON.rindex("}")]
    + """' || ',"pending":' || CASE WHEN pc_found THEN 'true' ELSE 'false' END
    || ',"clears_at":' || CASE WHEN pc_clears_at < 'infinity'
                              THEN '"' || to_char(pc_clears_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '"'
                              ELSE 'null' END
    || ',"awaiting":' || CASE WHEN pc_awaiting LIKE 'referral:%' THEN '"referral_qualification"'
                             WHEN pc_awaiting IS NOT NULL THEN '"condition"' ELSE 'null' END || '}'"""
)

# One page, newest first, from idx_earnings_user_seq alone (Index Only Scan: every column read is
# in the index). The keyset condition seq < :before_seq is an index condition, so the deepest page
# costs the same as the first; type and date filters are checked on the index tuples.
# One page as JSON text built by PostgreSQL from idx_earnings_user_seq (index-only): decoding 51
# rows with timestamps in pg8000 and formatting them in Python cost more than the scan itself.
# Reads limit + 1 rows to learn whether another page follows.
HISTORY_PAGE = Query(
    "earnings_history_page",
    f"""SELECT '[' || coalesce(string_agg(obj, ',' ORDER BY seq DESC) FILTER (WHERE n <= CAST(:limit AS int)), '') || ']' AS items,
              count(*) > CAST(:limit AS int) AS more,
              min(seq) FILTER (WHERE n <= CAST(:limit AS int)) AS last_seq
         FROM (SELECT seq, row_number() OVER (ORDER BY seq DESC) AS n, {HISTORY_ENTRY_JSON} AS obj
                 FROM (SELECT seq, type, amount, balance_after, created_at, source, reference
                         FROM earnings
                        WHERE user_id = CAST(:user_id AS uuid)
                          AND seq < CAST(:before_seq AS bigint)
                          AND (CAST(:type AS text) IS NULL OR type = CAST(:type AS text))
                          AND (CAST(:from_ts AS timestamptz) IS NULL OR created_at >= CAST(:from_ts AS timestamptz))
                          AND (CAST(:to_ts AS timestamptz) IS NULL OR created_at < CAST(:to_ts AS timestamptz))
                        ORDER BY seq DESC
                        LIMIT CAST(:limit AS int) + 1) page
                 -- still-pending credits of the page and their clearing time: one primary-key probe per
                 -- row of the page (LIMIT 1 keeps it a probe; a join would sort the user's pending rows)
                 LEFT JOIN LATERAL (SELECT true AS pc_found, p.clears_at AS pc_clears_at, p.awaiting AS pc_awaiting
                                      FROM pending_credits p
                                     WHERE p.user_id = CAST(:user_id AS uuid) AND p.seq = page.seq LIMIT 1) pc ON true
              ) numbered""",
)

BALANCE = Query(
    "earnings_balance",
    """SELECT available, pending, held, lifetime_earned, lifetime_paid_out, entry_count, updated_at
         FROM balances WHERE user_id = CAST(:user_id AS uuid)""",
)

# The user's entry count: read on the primary before a replica read, and on the replica with it; the
# replica's answer is used only when it has at least as many of the user's entries (read-your-writes).
ENTRY_COUNT = Query("earnings_entry_count", "SELECT entry_count FROM balances WHERE user_id = CAST(:user_id AS uuid)")

# The credits still pending, soonest to clear first (those awaiting a condition last): a few days
# of credits at most, read by the (user_id, seq) primary key of pending_credits.
PENDING_ENTRIES = Query(
    "earnings_pending_entries",
    """SELECT seq, entry_id, type, amount, CASE WHEN clears_at < 'infinity' THEN clears_at END AS clears_at, awaiting
         FROM pending_credits WHERE user_id = CAST(:user_id AS uuid)
        ORDER BY clears_at, seq
        LIMIT :limit""",
)

# Sums by type over the last 30 UTC days from idx_earnings_user_date (user_id, created_at DESC)
# INCLUDE (seq, type, amount): an index-only range scan of those 30 days, never the whole history.
PERIOD_SUMS = Query(
    "earnings_period_sums",
    """SELECT type,
              coalesce(sum(amount) FILTER (WHERE created_at >= CAST(:today AS timestamptz)), 0)::bigint AS today,
              coalesce(sum(amount) FILTER (WHERE created_at >= CAST(:since_7 AS timestamptz)), 0)::bigint AS last_7_days,
              coalesce(sum(amount), 0)::bigint AS last_30_days,
              count(*) FILTER (WHERE created_at >= CAST(:today AS timestamptz)) AS n_today,
              count(*) FILTER (WHERE created_at >= CAST(:since_7 AS timestamptz)) AS n_7,
              count(*) AS n_30
         FROM earnings
        WHERE user_id = CAST(:user_id AS uuid) AND created_at >= CAST(:since_30 AS timestamptz)
        GROUP BY type
        ORDER BY type""",
)

# One range of the whole-history export (seq in (after, upto]) as JSON text built by PostgreSQL
# (decoding 10,000 rows in Python costs ~15x more than receiving one text value), newest first, from
# idx_earnings_user_seq alone; the items are the history items (ENTRY_JSON), in the same compact
# text. n is the number of entries read: entries are never changed, so a range read anywhere is the
# same text as long as it holds all of them (service.export checks n).
EXPORT_RANGE = Query(
    "earnings_export_range",
    f"""SELECT count(*) AS n, coalesce(string_agg({ENTRY_JSON}, ',' ORDER BY seq DESC), '') AS items
          FROM earnings
         WHERE user_id = CAST(:user_id AS uuid) AND seq > CAST(:after AS bigint) AND seq <= CAST(:upto AS bigint)""",
)
