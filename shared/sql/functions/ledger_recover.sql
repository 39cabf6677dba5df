-- ledger_recover: the current body (first made by 0110_ledger_recovery.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- Takes a credit back whatever became of it: pending, it is clawed back (ledger_reverse, a
-- 'reversal'); cleared (available, held or paid out), the user owes it back ('recovery', key
-- 'recovery:<entry id>'). Twice: the first answer with duplicate = true. `recovered` says which.
-- Errors: EP030 no such entry of this user, EP032 the entry is not a credit.
CREATE OR REPLACE FUNCTION ledger_recover(p_user_id UUID, p_entry_id BIGINT, p_source TEXT, p_metadata JSONB)
RETURNS TABLE (entry_id BIGINT, entry_seq BIGINT, entry_balance_after BIGINT, entry_created_at TIMESTAMPTZ, duplicate BOOLEAN,
               reversed_amount BIGINT, recovered BOOLEAN)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    e RECORD;
BEGIN
    -- Waits for a clearing in progress on this entry (it locks the row), then sees it gone.
    PERFORM 1 FROM pending_credits pc WHERE pc.user_id = p_user_id AND pc.entry_id = p_entry_id FOR UPDATE;
    IF FOUND OR EXISTS (SELECT 1 FROM earnings x WHERE x.user_id = p_user_id AND x.idempotency_key = 'reversal:' || p_entry_id) THEN
        RETURN QUERY SELECT r.*, false FROM ledger_reverse(p_user_id, p_entry_id, p_source, p_metadata) r;
        RETURN;
    END IF;
    SELECT x.type, x.amount INTO e FROM earnings x WHERE x.user_id = p_user_id AND x.id = p_entry_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no entry % for user %', p_entry_id, p_user_id USING ERRCODE = 'EP030';
    END IF;
    IF NOT (ledger_is_earning(e.type) AND e.amount > 0) THEN
        RAISE EXCEPTION 'entry % is not a credit', p_entry_id USING ERRCODE = 'EP032';
    END IF;
    RETURN QUERY SELECT a.*, e.amount, true
      FROM ledger_append(p_user_id, 'recovery', -e.amount, 'recovery:' || p_entry_id, p_source, p_entry_id::text,
                         p_metadata, NULL, NULL, p_entry_id) a;
END
$$;
