-- ledger_post_pending: the current body (first made by 0060_balance_buckets.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- A credit into pending: it clears at p_clears_at, or ('infinity' with p_awaiting) when the named
-- condition is settled by ledger_settle_awaiting.
CREATE OR REPLACE FUNCTION ledger_post_pending(
    p_user_id UUID, p_type TEXT, p_amount BIGINT, p_key TEXT, p_source TEXT, p_reference TEXT, p_metadata JSONB,
    p_clears_at TIMESTAMPTZ, p_awaiting TEXT
) RETURNS TABLE (entry_id BIGINT, entry_seq BIGINT, entry_balance_after BIGINT, entry_created_at TIMESTAMPTZ, duplicate BOOLEAN)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF p_clears_at IS NULL THEN
        RAISE EXCEPTION 'a pending credit needs its clearing time' USING ERRCODE = 'EP005';
    END IF;
    RETURN QUERY SELECT * FROM ledger_append(p_user_id, p_type, p_amount, p_key, p_source, p_reference, p_metadata,
                                             p_clears_at, p_awaiting, NULL);
END
$$;
