"""SQL of the feature flags."""

from shared.db import Query

_COLUMNS = "key, description, enabled, rollout_percent, created_at, updated_at, updated_by::text AS updated_by"

ALL_FLAGS = Query("flags_all", f"SELECT {_COLUMNS} FROM feature_flags ORDER BY key")

# The cache needs only what decides a user's answer.
ALL_FLAG_STATES = Query("flags_all_states", "SELECT key, enabled, rollout_percent FROM feature_flags")

FLAG_FOR_UPDATE = Query("flag_for_update", f"SELECT {_COLUMNS} FROM feature_flags WHERE key = :key FOR UPDATE")

UPSERT_FLAG = Query(
    "flag_upsert",
    f"""INSERT INTO feature_flags AS f (key, description, enabled, rollout_percent, updated_by)
        VALUES (:key, coalesce(:description, ''), :enabled, :rollout_percent, CAST(:staff_id AS uuid))
        ON CONFLICT (key) DO UPDATE
           SET description = coalesce(:description, f.description),
               enabled = EXCLUDED.enabled,
               rollout_percent = EXCLUDED.rollout_percent,
               updated_at = now(),
               updated_by = EXCLUDED.updated_by
        RETURNING {_COLUMNS}""",
)
