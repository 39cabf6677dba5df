-- payout_requests_after_insert: the current body (first made by 0021_payouts.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- The guard and the history writer are statement-level triggers over transition tables: a batch
-- worker changes 1,000 rows in one statement, and one set-based check and one INSERT ... SELECT cost
-- a fraction of 1,000 row-level trigger calls. Errors: EP020 illegal transition, EP022 immutable
-- column changed. SECURITY DEFINER: the app role cannot insert events itself.
CREATE OR REPLACE FUNCTION payout_requests_after_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows WHERE status <> 'requested') THEN
        RAISE EXCEPTION 'a payout request starts as requested' USING ERRCODE = 'EP020';
    END IF;
    INSERT INTO payout_events (payout_id, from_state, to_state, actor, reason, attempt)
    SELECT id, NULL, status, last_actor, last_reason, attempts FROM new_rows;
    RETURN NULL;
END
$$;
