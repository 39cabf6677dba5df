"""SQL of the progress function: heartbeats go through the database function progress_heartbeat()."""

from shared.db import Query
from shared.sessions import PRINCIPAL_COLUMNS, SESSION_CHECK_CTES

HEARTBEAT = Query(
    "progress_heartbeat",
    """SELECT status, credited_now, position_seconds, credited_seconds, required_seconds, duration_seconds,
              completed_at, reward_micros, withheld_micros, reward_entry_id, last_heartbeat_at
         FROM progress_heartbeat(CAST(:user_id AS uuid), CAST(:video_id AS uuid), CAST(:position AS numeric),
                                 CAST(:playing AS boolean), CAST(:client_seq AS bigint), CAST(:session_id AS uuid),
                                 CAST(:complete AS boolean), CAST(:daily_cap AS bigint), NULL)""",
)

# The session check (idle touch: shared/sessions.py) and the heartbeat in one statement: one round
# trip per heartbeat instead of two. progress_heartbeat runs only for an active account (the OFFSET 0
# subquery keeps the planner from calling it for any other row) and counts the per-user rate limit
# itself, in the active_streams row it writes anyway (no rate_limits upsert); past the limit it does
# nothing and answers the count, which rl hands to PRINCIPAL_COLUMNS. Otherwise the row carries only
# the principal's columns and the caller answers 401/403/429.
HEARTBEAT_AUTHENTICATED = Query(
    "progress_heartbeat_authenticated",
    f"""WITH {SESSION_CHECK_CTES}, ok AS (
            SELECT s.user_id FROM s
             WHERE s.status = 'active'
               -- a suspended (or banned) account cannot earn (docs/fraud.md): no heartbeat work at all
               AND s.risk_state NOT IN ('suspended', 'banned')
            OFFSET 0
        ), hb AS (
            SELECT h.* FROM ok,
                   LATERAL progress_heartbeat(ok.user_id, CAST(:video_id AS uuid), CAST(:position AS numeric),
                                              CAST(:playing AS boolean), CAST(:client_seq AS bigint), CAST(:session_id AS uuid),
                                              false, CAST(:daily_cap AS bigint), CAST(:max_hits AS int)) h
        ), rl AS (
            SELECT hb.rl_hits AS hits, date_trunc('minute', now()) AS window_start FROM hb
        )
        SELECT {PRINCIPAL_COLUMNS},
               hb.status, hb.credited_now, hb.position_seconds, hb.credited_seconds, hb.required_seconds, hb.duration_seconds,
               hb.completed_at, hb.reward_micros, hb.withheld_micros, hb.reward_entry_id, hb.last_heartbeat_at
          FROM s LEFT JOIN rl ON true LEFT JOIN hb ON true""",
    table="video_progress",
)

ATTACH_REWARD = Query(
    "progress_attach_reward",
    """UPDATE video_progress SET reward_entry_id = CAST(:entry_id AS bigint)
        WHERE user_id = CAST(:user_id AS uuid) AND video_id = CAST(:video_id AS uuid) AND completed_at IS NOT NULL""",
)

_COLUMNS = """v.id::text AS video_id, v.title, v.duration_seconds, v.reward_micros AS video_reward_micros, v.required_watch_pct,
              v.active, p.position_seconds, p.credited_seconds, p.playing, p.heartbeats, p.started_at, p.last_heartbeat_at,
              p.completed_at, p.reward_micros, p.withheld_micros, p.reward_entry_id"""

# One video's progress; the video row alone (p.* NULL) when the user has not started it.
ONE = Query(
    "progress_one",
    f"""SELECT {_COLUMNS}
          FROM videos v
          LEFT JOIN video_progress p ON p.video_id = v.id AND p.user_id = CAST(:user_id AS uuid)
         WHERE v.id = CAST(:video_id AS uuid)""",
)

# The user's videos, most recently started first; keyset on (started_at, video_id) through
# idx_video_progress_user_started. started_at travels in the cursor as integer microseconds.
PAGE = Query(
    "progress_page",
    f"""SELECT {_COLUMNS}
          FROM video_progress p
          JOIN videos v ON v.id = p.video_id
         WHERE p.user_id = CAST(:user_id AS uuid)
           AND (CAST(:after_us AS bigint) IS NULL
                OR (p.started_at, p.video_id)
                   < (timestamptz 'epoch' + CAST(:after_us AS bigint) * interval '1 microsecond', CAST(:after_id AS uuid)))
           AND (CAST(:completed AS boolean) IS NULL OR (p.completed_at IS NOT NULL) = CAST(:completed AS boolean))
         ORDER BY p.started_at DESC, p.video_id DESC
         LIMIT :limit""",
)
