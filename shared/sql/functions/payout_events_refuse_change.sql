-- payout_events_refuse_change: the current body (first made by 0021_payouts.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
CREATE OR REPLACE FUNCTION payout_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'payout_events is append-only: % is not allowed', TG_OP USING ERRCODE = 'EP021';
END
$$;
