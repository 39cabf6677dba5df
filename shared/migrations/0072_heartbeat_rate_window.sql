-- Issue 13: a heartbeat counts against the per-user rate limit in the row it writes anyway
-- (active_streams, the user's stream and heartbeat lock), not with an upsert of rate_limits: one
-- write fewer per heartbeat. The counter is a fixed one-minute window, like rate_limits'.
ALTER TABLE active_streams
    ADD COLUMN rl_window_start TIMESTAMPTZ,
    ADD COLUMN rl_hits INTEGER NOT NULL DEFAULT 0;

-- progress_heartbeat takes the limit and answers the count (a new signature): the old one goes, and
-- shared/sql/functions/progress_heartbeat.sql creates the new one (with its grant) after the migrations.
DROP FUNCTION progress_heartbeat(UUID, UUID, NUMERIC, BOOLEAN, BIGINT, UUID, BOOLEAN, BIGINT);
