"""SQL of the partners area: configuration, secrets, applied rewards, the callback log and the report."""

from shared.db import Query

_PARTNER_COLUMNS = """id, name, kind, enabled, reward_micros_per_unit, revenue_micros_per_unit, max_units, daily_cap_micros,
       clearing_hours, key_url, allowed_sources::text[] AS allowed_sources, timestamp_window_seconds, answer_ok, answer_error,
       answer_content_type, error_status, created_at, updated_at"""

# secret_generation: the newest signing-secret version. Every rotation adds one (and retires the others in
# the same transaction), so a cached set of secrets with another generation is stale (service._live_secrets).
PARTNER = Query(
    "partner_by_id",
    f"""SELECT {_PARTNER_COLUMNS},
               (SELECT max(version) FROM partner_secrets s WHERE s.partner_id = partners.id) AS secret_generation
          FROM partners WHERE id = :id""",
)

PARTNERS = Query("partners_all", f"SELECT {_PARTNER_COLUMNS} FROM partners ORDER BY id")

INSERT_PARTNER = Query(
    "partner_insert",
    f"""INSERT INTO partners (id, name, kind, enabled, reward_micros_per_unit, revenue_micros_per_unit, max_units, daily_cap_micros,
                              clearing_hours, key_url, allowed_sources, timestamp_window_seconds, answer_ok, answer_error,
                              answer_content_type, error_status)
        VALUES (:id, :name, :kind, :enabled, :reward_micros_per_unit, :revenue_micros_per_unit, :max_units, :daily_cap_micros,
                :clearing_hours, :key_url, CAST(:allowed_sources AS cidr[]), :timestamp_window_seconds, :answer_ok, :answer_error,
                :answer_content_type, :error_status)
        ON CONFLICT (id) DO NOTHING
        RETURNING {_PARTNER_COLUMNS}""",
)

UPDATE_PARTNER = Query(
    "partner_update",
    f"""UPDATE partners
           SET name = :name, enabled = :enabled, reward_micros_per_unit = :reward_micros_per_unit,
               revenue_micros_per_unit = :revenue_micros_per_unit, max_units = :max_units, daily_cap_micros = :daily_cap_micros,
               clearing_hours = :clearing_hours, key_url = :key_url, allowed_sources = CAST(:allowed_sources AS cidr[]),
               timestamp_window_seconds = :timestamp_window_seconds, answer_ok = :answer_ok, answer_error = :answer_error,
               answer_content_type = :answer_content_type, error_status = :error_status, updated_at = now()
         WHERE id = :id
        RETURNING {_PARTNER_COLUMNS}""",
)

SOURCE_ALLOWED = Query(
    "partner_source_allowed",
    "SELECT EXISTS (SELECT 1 FROM unnest(CAST(:cidrs AS cidr[])) c WHERE CAST(:ip AS inet) <<= c)",
)

# --- secrets ---------------------------------------------------------------------------------------
# The versions in this process's store still verifying; reference: the Secret Manager version's name, or
# the envelope (shared/secrets.py).
LIVE_SECRETS = Query(
    "partner_live_secrets",
    """SELECT version, retires_at, coalesce(secret_version, envelope::text) AS reference FROM partner_secrets
        WHERE partner_id = :partner_id AND store = :store AND (retires_at IS NULL OR retires_at > now())
        ORDER BY version DESC""",
)

SECRET_VERSIONS = Query(
    "partner_secret_versions",
    """SELECT version, store, created_at, retires_at FROM partner_secrets WHERE partner_id = :partner_id ORDER BY version DESC""",
)

RETIRE_SECRETS = Query(
    "partner_retire_secrets",
    """UPDATE partner_secrets SET retires_at = now() + make_interval(secs => :overlap_seconds)
        WHERE partner_id = :partner_id AND (retires_at IS NULL OR retires_at > now() + make_interval(secs => :overlap_seconds))""",
)

# Secret Manager versions whose overlap is over and that are not disabled yet, oldest retirement
# first (maintenance task partner_secrets_disable).
RETIRED_TO_DISABLE = Query(
    "partner_retired_to_disable",
    """SELECT partner_id, version, secret_version FROM partner_secrets
        WHERE store = 'secret_manager' AND retires_at <= now() AND disabled_at IS NULL
        ORDER BY retires_at, partner_id, version
        LIMIT :limit""",
)

MARK_DISABLED = Query(
    "partner_mark_disabled",
    """UPDATE partner_secrets SET disabled_at = now()
        WHERE partner_id = :partner_id AND version = :version AND disabled_at IS NULL AND retires_at <= now()""",
)

INSERT_SECRET = Query(
    "partner_insert_secret",
    """INSERT INTO partner_secrets (partner_id, version, store, envelope, secret_version)
       SELECT :partner_id, coalesce(max(version), 0) + 1, :store, CAST(:envelope AS jsonb), :secret_version
         FROM partner_secrets WHERE partner_id = :partner_id
       RETURNING version, store, created_at, retires_at""",
)

# --- rewards ---------------------------------------------------------------------------------------
# Serialises every delivery of one (partner, transaction): concurrent retries apply it once.
LOCK_TRANSACTION = Query("partner_lock_transaction", "SELECT pg_advisory_xact_lock(hashtextextended(:lock_key, 0))")

REWARD = Query(
    "partner_reward_by_txn",
    """SELECT partner_id, transaction_id, user_id::text AS user_id, units, reward_micros, revenue_micros, request_hash, entry_id,
              credited_on, created_at, reversed_at, reversal_kind, reversal_entry_id
         FROM partner_rewards WHERE partner_id = :partner_id AND transaction_id = :transaction_id""",
)

CREDITED_TODAY = Query(
    "partner_credited_today",
    """SELECT coalesce(sum(reward_micros), 0) FROM partner_rewards
        WHERE partner_id = :partner_id AND user_id = CAST(:user_id AS uuid) AND credited_on = (now() AT TIME ZONE 'UTC')::date""",
)

USER_EXISTS = Query("partner_user_exists", "SELECT EXISTS (SELECT 1 FROM balances WHERE user_id = CAST(:user_id AS uuid))")

INSERT_REWARD = Query(
    "partner_insert_reward",
    """INSERT INTO partner_rewards (partner_id, transaction_id, user_id, units, reward_micros, revenue_micros, request_hash, entry_id,
                                    credited_on)
       VALUES (:partner_id, :transaction_id, CAST(:user_id AS uuid), :units, :reward_micros, :revenue_micros, :request_hash, :entry_id,
               (now() AT TIME ZONE 'UTC')::date)""",
)

MARK_REVERSED = Query(
    "partner_mark_reversed",
    """UPDATE partner_rewards
          SET reversed_at = now(), reversed_on = (now() AT TIME ZONE 'UTC')::date, reversal_kind = :kind, reversal_entry_id = :entry_id
        WHERE partner_id = :partner_id AND transaction_id = :transaction_id AND reversed_at IS NULL""",
)

# --- the callback log ------------------------------------------------------------------------------
RECORD_CALLBACK = Query(
    "partner_record_callback",
    """INSERT INTO partner_callbacks (partner_ref, kind, transaction_id, user_ref, outcome, reason, source_ip, query)
       VALUES (:partner_ref, :kind, :transaction_id, :user_ref, :outcome, :reason, :source_ip, :query)
       RETURNING id""",
)

CALLBACKS = Query(
    "partner_callbacks_recent",
    """SELECT id, kind, transaction_id, user_ref, outcome, reason, source_ip, received_at FROM partner_callbacks
        WHERE partner_ref = :partner_id AND (CAST(:before_id AS bigint) IS NULL OR id < CAST(:before_id AS bigint))
        ORDER BY partner_ref, received_at DESC, id DESC LIMIT :limit""",
)

# The rate-limit counter of refused callbacks from one address, read without counting (shared.ratelimit
# counts on refusal), so a flood is turned away before any signature work.
BAD_HITS = Query(
    "partner_bad_hits",
    """SELECT hits FROM rate_limits
        WHERE bucket = :bucket AND window_start = to_timestamp(floor(extract(epoch FROM now()) / :window) * :window)""",
)

# --- finance ---------------------------------------------------------------------------------------
# Per partner and UTC day: revenue and rewards of the rewards credited that day, what was reversed
# that day (and its revenue), and what cleared to users' available balances that day (the clearing
# entries of partner rewards, found by their ledger key).
REPORT = Query(
    "partner_report",
    """
    WITH credited AS (
        SELECT partner_id, credited_on AS day, count(*) AS rewards, sum(reward_micros) AS credited, sum(revenue_micros) AS revenue
          FROM partner_rewards
         WHERE credited_on BETWEEN :from_day AND :to_day AND (CAST(:partner_id AS text) IS NULL OR partner_id = :partner_id)
         GROUP BY 1, 2
    ), reversed AS (
        SELECT partner_id, reversed_on AS day, count(*) AS reversals, sum(reward_micros) AS reversed,
               sum(reward_micros) FILTER (WHERE reversal_kind = 'recovery') AS recovered, sum(revenue_micros) AS revenue_reversed
          FROM partner_rewards
         WHERE reversed_on BETWEEN :from_day AND :to_day AND (CAST(:partner_id AS text) IS NULL OR partner_id = :partner_id)
         GROUP BY 1, 2
    ), cleared AS (
        SELECT r.partner_id, (e.created_at AT TIME ZONE 'UTC')::date AS day, sum(e.amount) AS paid_out
          FROM partner_rewards r
          JOIN earnings e ON e.user_id = r.user_id AND e.idempotency_key = 'clearing:' || r.entry_id
         WHERE r.credited_on <= :to_day AND (CAST(:partner_id AS text) IS NULL OR r.partner_id = :partner_id)
           AND e.created_at >= CAST(:from_day AS date) AND e.created_at < CAST(:to_day AS date) + 1
         GROUP BY 1, 2
    )
    SELECT partner_id, day,
           coalesce(c.rewards, 0) AS rewards, coalesce(c.credited, 0) AS credited, coalesce(c.revenue, 0) AS revenue,
           coalesce(v.reversals, 0) AS reversals, coalesce(v.reversed, 0) AS reversed, coalesce(v.recovered, 0) AS recovered,
           coalesce(v.revenue_reversed, 0) AS revenue_reversed, coalesce(p.paid_out, 0) AS paid_out
      FROM credited c
      FULL JOIN reversed v USING (partner_id, day)
      FULL JOIN cleared p USING (partner_id, day)
     ORDER BY day, partner_id
    """,
    prepared=False,
)
