-- video_required_seconds: the credited watch time that completes a video, ceil(duration * pct / 100)
-- whole seconds. The one rule in SQL (progress_heartbeat calls it); functions.videos.service.
-- required_seconds is its Python twin for answers, and tests/shared/test_sql_functions.py holds the
-- two equal for every percentage and for durations up to four hours.
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
CREATE OR REPLACE FUNCTION video_required_seconds(p_duration_seconds INTEGER, p_required_watch_pct INTEGER) RETURNS INTEGER
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ceil(p_duration_seconds * p_required_watch_pct / 100.0)::int
$$;
