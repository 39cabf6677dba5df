"""SQL of the risk area: one named statement per rule measurement, scan and state change."""

from __future__ import annotations

from shared.db import Query

_W = "make_interval(mins => CAST(:window_minutes AS int))"

# Each measurement answers one row: value (the count the rule compares with its threshold) and details.
MEASURE: dict[str, Query] = {
    "signup_velocity_prefix": Query(
        "risk_m_signup_prefix",
        f"""SELECT count(DISTINCT o.user_id)::int AS value, '{{}}'::jsonb AS details
              FROM risk_observations me
              JOIN risk_observations o ON o.prefix = me.prefix AND o.kind = 'signup'
                                      AND o.created_at BETWEEN me.created_at - {_W} AND me.created_at + {_W}
             WHERE me.user_id = CAST(:user_id AS uuid) AND me.kind = 'signup'""",
    ),
    "signup_burst": Query(
        "risk_m_signup_burst",
        f"""SELECT count(DISTINCT o.user_id)::int AS value, '{{}}'::jsonb AS details
              FROM risk_observations me
              JOIN risk_observations o ON o.prefix = me.prefix AND o.kind = 'signup'
                                      AND o.created_at BETWEEN me.created_at - {_W} AND me.created_at + {_W}
             WHERE me.user_id = CAST(:user_id AS uuid) AND me.kind = 'signup'""",
    ),
    "signup_velocity_device": Query(
        "risk_m_signup_device",
        f"""SELECT count(DISTINCT o.user_id)::int AS value, '{{}}'::jsonb AS details
              FROM risk_observations me
              JOIN risk_observations o ON o.device_hash = me.device_hash AND o.kind = 'signup'
                                      AND o.created_at BETWEEN me.created_at - {_W} AND me.created_at + {_W}
             WHERE me.user_id = CAST(:user_id AS uuid) AND me.kind = 'signup' AND me.device_hash IS NOT NULL""",
    ),
    # Seconds of video completed in the window ending at the latest completion, in percent of the window.
    "completion_velocity": Query(
        "risk_m_completion_velocity",
        f"""WITH last AS (SELECT max(completed_at) AS at FROM video_progress
                           WHERE user_id = CAST(:user_id AS uuid) AND completed_at IS NOT NULL)
            SELECT coalesce((100 * sum(v.duration_seconds) / (60 * CAST(:window_minutes AS int)))::int, 0) AS value,
                   jsonb_build_object('completions', count(*), 'seconds', coalesce(sum(v.duration_seconds), 0)) AS details
              FROM last, video_progress p JOIN videos v ON v.id = p.video_id
             WHERE p.user_id = CAST(:user_id AS uuid) AND p.completed_at BETWEEN last.at - {_W} AND last.at""",
    ),
    # Completions in the window whose spacing is as regular as a clock (coefficient of variation < 5 %).
    "machine_timing": Query(
        "risk_m_machine_timing",
        f"""WITH last AS (SELECT max(completed_at) AS at FROM video_progress
                           WHERE user_id = CAST(:user_id AS uuid) AND completed_at IS NOT NULL),
                 gaps AS (
                SELECT extract(epoch FROM p.completed_at - lag(p.completed_at) OVER (ORDER BY p.completed_at)) AS gap
                  FROM last, video_progress p
                 WHERE p.user_id = CAST(:user_id AS uuid) AND p.completed_at BETWEEN last.at - {_W} AND last.at)
            SELECT CASE WHEN count(gap) >= 2 AND avg(gap) > 0 AND stddev_samp(gap) / avg(gap) < 0.05
                        THEN count(gap)::int + 1 ELSE 0 END AS value,
                   jsonb_build_object('completions', count(gap) + 1, 'mean_gap_s', round(coalesce(avg(gap), 0)::numeric, 1)) AS details
              FROM gaps""",
    ),
    "linked_device": Query(
        "risk_m_linked_device",
        f"""SELECT count(DISTINCT o.user_id)::int AS value, jsonb_build_object('devices', count(DISTINCT o.device_hash)) AS details
              FROM risk_observations o
             WHERE o.device_hash IN (SELECT device_hash FROM risk_observations
                                      WHERE user_id = CAST(:user_id AS uuid) AND device_hash IS NOT NULL)
               AND o.created_at > now() - {_W}""",
    ),
    "linked_prefix": Query(
        "risk_m_linked_prefix",
        f"""SELECT count(DISTINCT o.user_id)::int AS value, jsonb_build_object('prefixes', count(DISTINCT o.prefix)) AS details
              FROM risk_observations o
             WHERE o.prefix IN (SELECT prefix FROM risk_observations
                                 WHERE user_id = CAST(:user_id AS uuid) AND prefix IS NOT NULL AND created_at > now() - {_W})
               AND o.created_at > now() - {_W}""",
    ),
    "linked_payout": Query(
        "risk_m_linked_payout",
        """SELECT count(DISTINCT m.user_id)::int AS value, '{}'::jsonb AS details
             FROM payout_methods m
            WHERE m.destination_fingerprint IN (SELECT destination_fingerprint FROM payout_methods
                                                 WHERE user_id = CAST(:user_id AS uuid) AND destination_fingerprint IS NOT NULL)""",
    ),
    # As referrer: referred accounts linked to it; as referred: 1 when linked to its own referrer.
    "referral_linked": Query(
        "risk_m_referral_linked",
        """SELECT ((SELECT count(*) FROM users r WHERE r.referred_by = CAST(:user_id AS uuid) AND ep_risk_linked(r.id, r.referred_by))
                 + (SELECT count(*) FROM users me WHERE me.id = CAST(:user_id AS uuid) AND me.referred_by IS NOT NULL
                                                    AND ep_risk_linked(me.id, me.referred_by)))::int AS value,
                  '{}'::jsonb AS details""",
    ),
    "referral_same_prefix": Query(
        "risk_m_referral_same_prefix",
        f"""SELECT count(DISTINCT r.id)::int AS value, '{{}}'::jsonb AS details
              FROM users r JOIN risk_observations o ON o.user_id = r.id AND o.kind = 'signup'
             WHERE r.referred_by = CAST(:user_id AS uuid)
               AND o.prefix IN (SELECT prefix FROM risk_observations
                                 WHERE user_id = CAST(:user_id AS uuid) AND prefix IS NOT NULL AND created_at > now() - {_W})""",
    ),
}

RULES = Query(
    "risk_rules",
    """SELECT name, description, threshold, window_minutes, weight, address_only, updated_at, updated_by::text AS updated_by
         FROM risk_rules ORDER BY name""",
)
RULE_FOR_UPDATE = Query(
    "risk_rule_for_update",
    """SELECT name, description, threshold, window_minutes, weight, address_only, updated_at, updated_by::text AS updated_by
         FROM risk_rules WHERE name = :name FOR UPDATE""",
)
UPDATE_RULE = Query(
    "risk_rule_update",
    """UPDATE risk_rules SET threshold = :threshold, window_minutes = :window_minutes, weight = :weight,
              updated_at = now(), updated_by = CAST(:staff_id AS uuid)
        WHERE name = :name
    RETURNING name, description, threshold, window_minutes, weight, address_only, updated_at, updated_by::text AS updated_by""",
)

UPSERT_SIGNAL = Query(
    "risk_upsert_signal",
    """INSERT INTO risk_signals AS s (user_id, rule, value, score, enforced, details)
       VALUES (CAST(:user_id AS uuid), :rule, :value, :score, :enforced, CAST(:details AS jsonb))
       ON CONFLICT (user_id, rule) DO UPDATE
          SET value = EXCLUDED.value, score = EXCLUDED.score, enforced = EXCLUDED.enforced, details = EXCLUDED.details,
              updated_at = now()
        WHERE (s.value, s.score, s.enforced, s.details)
              IS DISTINCT FROM (EXCLUDED.value, EXCLUDED.score, EXCLUDED.enforced, EXCLUDED.details)""",
)
DELETE_SIGNAL = Query("risk_delete_signal", "DELETE FROM risk_signals WHERE user_id = CAST(:user_id AS uuid) AND rule = :rule")

USER_STATE = Query(
    "risk_user_state",
    """SELECT id::text AS id, role, status, risk_state, risk_state_changed_at, risk_cleared_score
         FROM users WHERE id = CAST(:user_id AS uuid) FOR UPDATE""",
)
SET_STATE = Query(
    "risk_set_state",
    """UPDATE users SET risk_state = :state, risk_state_changed_at = now(), updated_at = now(),
              risk_cleared_score = coalesce(CAST(:cleared_score AS int), risk_cleared_score),
              status = CASE WHEN :state = 'banned' AND status = 'active' THEN 'blocked'
                            WHEN :state <> 'banned' AND status = 'blocked' THEN 'active' ELSE status END
        WHERE id = CAST(:user_id AS uuid)""",
)
INSERT_TRANSITION = Query(
    "risk_insert_transition",
    """INSERT INTO risk_transitions (user_id, from_state, to_state, actor_kind, actor_id, reason, score)
       VALUES (CAST(:user_id AS uuid), :from_state, :to_state, :actor_kind, CAST(:actor_id AS uuid), :reason, :score)
       RETURNING id, created_at""",
)
REVOKE_SESSIONS = Query(
    "risk_revoke_sessions",
    "UPDATE sessions SET revoked_at = now(), revoked_reason = 'banned' WHERE user_id = CAST(:user_id AS uuid) AND revoked_at IS NULL",
)
PENDING_ENTRIES = Query(
    "risk_pending_entries",
    "SELECT entry_id FROM pending_credits WHERE user_id = CAST(:user_id AS uuid) ORDER BY seq",
)

# --- the scan ------------------------------------------------------------------------------------
SCAN_STATE = Query("risk_scan_state", "SELECT last_observation_id, last_completion_at FROM risk_scan_state FOR UPDATE")
SCAN_ADVANCE = Query(
    "risk_scan_advance",
    "UPDATE risk_scan_state SET last_observation_id = :obs, last_completion_at = :completion, scanned_at = now()",
)
# The accounts with news since the watermark, and the accounts linked to them (same device, prefix or
# referrer), since a new account on a device changes every account already on it.
SCAN_NEW = Query(
    "risk_scan_new",
    """WITH obs AS (
            SELECT id, user_id, prefix, device_hash FROM risk_observations WHERE id > :after_id ORDER BY id LIMIT :limit
        ), done AS (
            SELECT user_id, completed_at FROM video_progress
             WHERE completed_at > CAST(:after_completion AS timestamptz) ORDER BY completed_at LIMIT :limit
        ), touched AS (
            SELECT user_id FROM obs
            UNION SELECT user_id FROM done
            UNION SELECT o.user_id FROM risk_observations o JOIN obs n ON o.device_hash = n.device_hash
            UNION SELECT o.user_id FROM risk_observations o JOIN obs n ON o.prefix = n.prefix
                   WHERE o.created_at > now() - interval '1 day'
            UNION SELECT u.referred_by FROM users u JOIN obs n ON n.user_id = u.id WHERE u.referred_by IS NOT NULL
        )
        SELECT (SELECT array_agg(DISTINCT user_id::text) FROM touched WHERE user_id IS NOT NULL) AS users,
               (SELECT max(id) FROM obs) AS last_observation_id,
               (SELECT max(completed_at) FROM done) AS last_completion_at""",
)

# --- staff views ---------------------------------------------------------------------------------
QUEUE = Query(
    "risk_queue",
    """SELECT u.id::text AS user_id, u.email, u.risk_state, u.risk_state_changed_at, u.created_at,
              coalesce((SELECT sum(score) FROM risk_signals s WHERE s.user_id = u.id AND s.enforced), 0)::int AS score,
              coalesce((SELECT json_agg(json_build_object('rule', s.rule, 'value', s.value, 'score', s.score, 'enforced', s.enforced)
                                        ORDER BY s.score DESC, s.rule)
                          FROM risk_signals s WHERE s.user_id = u.id AND s.score > 0), '[]')::text AS signals
         FROM users u
        WHERE u.risk_state = :state
          AND (CAST(:after AS timestamptz) IS NULL
               OR (u.risk_state_changed_at, u.id) > (CAST(:after AS timestamptz), CAST(:after_id AS uuid)))
        ORDER BY u.risk_state_changed_at, u.id
        LIMIT :limit""",
)
SIGNALS = Query(
    "risk_user_signals",
    """SELECT s.rule, s.value, s.score, s.enforced, s.details::text AS details, r.threshold, r.address_only, s.first_seen_at, s.updated_at
         FROM risk_signals s JOIN risk_rules r ON r.name = s.rule
        WHERE s.user_id = CAST(:user_id AS uuid) ORDER BY s.score DESC, s.rule""",
)
TRANSITIONS = Query(
    "risk_user_transitions",
    """SELECT id, from_state, to_state, actor_kind, actor_id::text AS actor_id, reason, score, created_at
         FROM risk_transitions WHERE user_id = CAST(:user_id AS uuid) ORDER BY id DESC LIMIT 50""",
)
# Accounts sharing a device, a network prefix or a payout destination with the user (at most 50).
LINKS = Query(
    "risk_user_links",
    """WITH me_dev AS (SELECT DISTINCT device_hash FROM risk_observations
                     WHERE user_id = CAST(:user_id AS uuid) AND device_hash IS NOT NULL),
            me_pre AS (SELECT DISTINCT prefix FROM risk_observations WHERE user_id = CAST(:user_id AS uuid) AND prefix IS NOT NULL),
            me_pay AS (SELECT DISTINCT destination_fingerprint AS f FROM payout_methods
                        WHERE user_id = CAST(:user_id AS uuid) AND destination_fingerprint IS NOT NULL),
            l AS (
                SELECT o.user_id, 'device' AS via FROM risk_observations o JOIN me_dev d ON d.device_hash = o.device_hash
                UNION SELECT o.user_id, 'prefix' FROM risk_observations o JOIN me_pre p ON p.prefix = o.prefix
                UNION SELECT m.user_id, 'payout_destination' FROM payout_methods m JOIN me_pay p ON p.f = m.destination_fingerprint
            )
       SELECT l.user_id::text AS user_id, u.risk_state, array_agg(DISTINCT l.via ORDER BY l.via) AS via
         FROM l JOIN users u ON u.id = l.user_id
        WHERE l.user_id <> CAST(:user_id AS uuid)
        GROUP BY l.user_id, u.risk_state
        ORDER BY count(*) DESC, l.user_id
        LIMIT 50""",
)
REFERRAL_TREE = Query(
    "risk_referral_tree",
    """SELECT u.id::text AS user_id, u.risk_state, u.created_at, coalesce(r.status, 'none') AS referral_status
         FROM users u LEFT JOIN referrals r ON r.referred_user_id = u.id
        WHERE u.referred_by = CAST(:user_id AS uuid)
        ORDER BY u.created_at LIMIT 100""",
)
REFERRER = Query(
    "risk_referrer",
    "SELECT referred_by::text AS referrer_id FROM users WHERE id = CAST(:user_id AS uuid)",
)
# Video rewards and completions in the last hour, day and week.
VELOCITY = Query(
    "risk_user_velocity",
    """SELECT count(*) FILTER (WHERE completed_at > now() - interval '1 hour')::int AS completions_1h,
              count(*) FILTER (WHERE completed_at > now() - interval '1 day')::int AS completions_24h,
              count(*) FILTER (WHERE completed_at > now() - interval '7 days')::int AS completions_7d,
              coalesce(sum(reward_micros) FILTER (WHERE completed_at > now() - interval '1 day'), 0)::bigint AS rewards_24h_micros,
              coalesce(sum(reward_micros) FILTER (WHERE completed_at > now() - interval '7 days'), 0)::bigint AS rewards_7d_micros
         FROM video_progress WHERE user_id = CAST(:user_id AS uuid) AND completed_at IS NOT NULL""",
)
# The finance payout list: each payout's account state and its top signals.
PAYOUT_RISK = Query(
    "risk_payout_users",
    """SELECT u.id::text AS user_id, u.risk_state,
              coalesce((SELECT json_agg(json_build_object('rule', s.rule, 'score', s.score, 'enforced', s.enforced)
                                        ORDER BY s.score DESC, s.rule)
                          FROM (SELECT * FROM risk_signals s WHERE s.user_id = u.id AND s.score > 0
                                 ORDER BY s.score DESC, s.rule LIMIT 3) s),
                       '[]')::text AS top_signals
         FROM users u WHERE u.id = ANY(CAST(:user_ids AS uuid[]))""",
)
