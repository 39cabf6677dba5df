"""SQL of the videos function."""

from shared.db import Query

_COLUMNS = """id::text AS id, slug, title, description, media_url, thumbnail_url, duration_seconds, reward_micros,
              required_watch_pct, active, created_at"""

# The catalogue is small (hundreds of videos): served whole, newest first, from idx_videos_active.
CATALOGUE = Query(
    "videos_catalogue",
    f"SELECT {_COLUMNS} FROM videos WHERE active ORDER BY created_at DESC, id DESC LIMIT :max_rows",
)

# The catalogue's version (migration 0070: bumped by a trigger on every change to videos).
CATALOGUE_VERSION = Query("videos_catalogue_version", "SELECT version FROM cache_versions WHERE name = 'catalogue'")

ACTIVE_VIDEO = Query("videos_active_one", f"SELECT {_COLUMNS} FROM videos WHERE id = CAST(:id AS uuid) AND active")

VIDEO = Query("videos_one", f"SELECT {_COLUMNS} FROM videos WHERE id = CAST(:id AS uuid)", prepared=False)

INSERT = Query(
    "videos_insert",
    f"""INSERT INTO videos (slug, title, description, media_url, thumbnail_url, duration_seconds, reward_micros,
                            required_watch_pct, active, created_by)
        VALUES (:slug, :title, :description, :media_url, :thumbnail_url, :duration_seconds, CAST(:reward_micros AS bigint),
                :required_watch_pct, :active, CAST(:created_by AS uuid))
        ON CONFLICT (slug) DO NOTHING
        RETURNING {_COLUMNS}""",
    prepared=False,
)

BY_SLUG = Query("videos_by_slug", f"SELECT {_COLUMNS} FROM videos WHERE slug = :slug", prepared=False)

# Every video, inactive ones too (the staff console's catalogue), newest first.
ALL_VIDEOS = Query(
    "videos_all",
    f"SELECT {_COLUMNS} FROM videos ORDER BY created_at DESC, id DESC LIMIT :max_rows",
)

# A partial edit: a NULL parameter keeps the column as it is.
UPDATE = Query(
    "videos_update",
    f"""UPDATE videos
           SET title = COALESCE(CAST(:title AS text), title),
               description = COALESCE(CAST(:description AS text), description),
               reward_micros = COALESCE(CAST(:reward_micros AS bigint), reward_micros),
               required_watch_pct = COALESCE(CAST(:required_watch_pct AS integer), required_watch_pct),
               active = COALESCE(CAST(:active AS boolean), active),
               updated_at = now()
         WHERE id = CAST(:id AS uuid)
     RETURNING {_COLUMNS}""",
    prepared=False,
)
