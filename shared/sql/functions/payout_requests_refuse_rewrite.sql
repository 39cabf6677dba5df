-- payout_requests_refuse_rewrite: the current body (first made by 0021_payouts.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- The owner, method and money of a request never change (the app role has no UPDATE on these
-- columns; this stops everyone else). UPDATE OF fires only when a statement names them: free otherwise.
CREATE OR REPLACE FUNCTION payout_requests_refuse_rewrite() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.user_id <> OLD.user_id OR NEW.method_id <> OLD.method_id OR NEW.amount_cents <> OLD.amount_cents
       OR NEW.currency <> OLD.currency OR NEW.requested_at <> OLD.requested_at THEN
        RAISE EXCEPTION 'the owner, method and amount of a payout request never change' USING ERRCODE = 'EP022';
    END IF;
    RETURN NEW;
END
$$;
