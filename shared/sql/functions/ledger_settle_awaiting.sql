-- ledger_settle_awaiting: the current body (first made by 0060_balance_buckets.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- Settles a condition pending credits await: with p_clears_at, they clear at that time from now on
-- (the clearing job picks them up); with NULL, the condition failed and every one of them is
-- reversed (source 'expiry'). Returns how many rows it settled. Rows are taken in (user, seq) order.
CREATE OR REPLACE FUNCTION ledger_settle_awaiting(p_awaiting TEXT, p_clears_at TIMESTAMPTZ, p_metadata JSONB DEFAULT NULL)
RETURNS INTEGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    r RECORD;
    n INTEGER := 0;
BEGIN
    IF p_clears_at IS NOT NULL THEN
        IF p_clears_at = 'infinity' THEN
            RAISE EXCEPTION 'settling needs a real clearing time' USING ERRCODE = 'EP005';
        END IF;
        WITH s AS (
            UPDATE pending_credits SET clears_at = p_clears_at, awaiting = NULL
             WHERE awaiting = p_awaiting
            RETURNING 1
        ) SELECT count(*) INTO n FROM s;
        RETURN n;
    END IF;
    FOR r IN SELECT pc.user_id, pc.entry_id FROM pending_credits pc WHERE pc.awaiting = p_awaiting ORDER BY pc.user_id, pc.seq LOOP
        PERFORM ledger_reverse(r.user_id, r.entry_id, 'expiry',
                               coalesce(p_metadata, '{}'::jsonb) || jsonb_build_object('awaiting', p_awaiting));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
