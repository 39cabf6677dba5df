-- payout_requests_after_update: the current body (first made by 0021_payouts.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- A status change must be listed in payout_transitions; a re-claim (attempts changes) counts as a
-- transition, a bookkeeping update (say, a pending provider answer) does not.
-- Transition tables have no statistics: without enable_nestloop = off the planner joins old and new
-- rows with a nested loop (1,000 x 1,000 comparisons, ~450 ms) instead of a hash join (~1 ms).
CREATE OR REPLACE FUNCTION payout_requests_after_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET enable_nestloop = off AS $$
DECLARE
    bad RECORD;
BEGIN
    SELECT o.status AS from_state, n.status AS to_state INTO bad
      FROM old_rows o JOIN new_rows n ON n.id = o.id
     WHERE (n.status <> o.status OR n.attempts <> o.attempts)
       AND NOT EXISTS (SELECT 1 FROM payout_transitions t WHERE t.from_state = o.status AND t.to_state = n.status)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'illegal payout transition % -> %', bad.from_state, bad.to_state USING ERRCODE = 'EP020';
    END IF;
    INSERT INTO payout_events (payout_id, from_state, to_state, actor, reason, attempt)
    SELECT n.id, o.status, n.status, n.last_actor, n.last_reason, n.attempts
      FROM old_rows o JOIN new_rows n ON n.id = o.id
     WHERE n.status <> o.status OR n.attempts <> o.attempts;
    RETURN NULL;
END
$$;
