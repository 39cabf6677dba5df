-- ledger_reverse: the current body (first made by 0060_balance_buckets.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- Reverses a pending credit: a 'reversal' entry of minus its amount that points at it. Reversing
-- twice returns the first reversal (duplicate = true). Errors: EP030 no such entry of this user,
-- EP031 the entry is not pending (it cleared, or was never pending): money that reached available
-- is never taken back silently. Locks the pending row first, as the clearing job does.
CREATE OR REPLACE FUNCTION ledger_reverse(p_user_id UUID, p_entry_id BIGINT, p_source TEXT, p_metadata JSONB)
RETURNS TABLE (entry_id BIGINT, entry_seq BIGINT, entry_balance_after BIGINT, entry_created_at TIMESTAMPTZ, duplicate BOOLEAN,
               reversed_amount BIGINT)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    r RECORD;
    e RECORD;
BEGIN
    SELECT pc.seq, pc.amount INTO r FROM pending_credits pc
     WHERE pc.user_id = p_user_id AND pc.entry_id = p_entry_id FOR UPDATE;
    IF NOT FOUND THEN
        SELECT x.id, x.seq, x.balance_after, x.created_at, x.amount INTO e
          FROM earnings x WHERE x.user_id = p_user_id AND x.idempotency_key = 'reversal:' || p_entry_id;
        IF FOUND THEN
            RETURN QUERY SELECT e.id, e.seq, e.balance_after, e.created_at, true, -e.amount;
            RETURN;
        END IF;
        IF NOT EXISTS (SELECT 1 FROM earnings x WHERE x.user_id = p_user_id AND x.id = p_entry_id) THEN
            RAISE EXCEPTION 'no entry % for user %', p_entry_id, p_user_id USING ERRCODE = 'EP030';
        END IF;
        RAISE EXCEPTION 'entry % is not pending: it cleared or was never pending', p_entry_id USING ERRCODE = 'EP031';
    END IF;
    RETURN QUERY SELECT a.*, r.amount
      FROM ledger_append(p_user_id, 'reversal', -r.amount, 'reversal:' || p_entry_id, p_source, p_entry_id::text,
                         p_metadata, NULL, NULL, p_entry_id) a;
    DELETE FROM pending_credits pc WHERE pc.user_id = p_user_id AND pc.seq = r.seq;
END
$$;
