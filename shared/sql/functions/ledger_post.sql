-- ledger_post: the current body (first made by 0010_ledger.sql, last changed by 0060_balance_buckets.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- The previous release's entry point, same signature and grants: an entry straight to (or out of)
-- available, as before; holds and releases now also move the held bucket. Clearing and reversal
-- have their own functions (they must find and remove the pending row), so they are refused here.
CREATE OR REPLACE FUNCTION ledger_post(
    p_user_id UUID, p_type TEXT, p_amount BIGINT, p_key TEXT, p_source TEXT,
    p_reference TEXT DEFAULT NULL, p_metadata JSONB DEFAULT NULL
) RETURNS TABLE (entry_id BIGINT, entry_seq BIGINT, entry_balance_after BIGINT, entry_created_at TIMESTAMPTZ, duplicate BOOLEAN)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF p_type IN ('clearing', 'reversal') THEN
        RAISE EXCEPTION '% entries are posted by ledger_clear_due and ledger_reverse only', p_type USING ERRCODE = 'EP005';
    END IF;
    RETURN QUERY SELECT * FROM ledger_append(p_user_id, p_type, p_amount, p_key, p_source, p_reference, p_metadata, NULL, NULL, NULL);
END
$$;
