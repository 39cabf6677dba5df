-- ledger_clear_due: the current body (first made by 0060_balance_buckets.sql, last changed by 0110_ledger_recovery.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- Clears up to p_limit due entries (clears_at <= p_now) in the caller's transaction and returns how
-- many. Rows are claimed with SKIP LOCKED, so concurrent runs take disjoint rows and a reversal in
-- progress is skipped; then processed in (user, seq) order, so two runs take balance locks in one
-- order and cannot deadlock. Exactly once: the clearing entry's key is 'clearing:<entry id>' and the
-- pending row is deleted in the same transaction. Recoveries are paid first: right after an entry
-- clears, what the user owes back (up to the cleared amount) leaves available again as a
-- 'recovery_payment' (key 'recovery_payment:<entry id>'). A user with nothing owed gets no such entry.
CREATE OR REPLACE FUNCTION ledger_clear_due(p_limit INTEGER, p_now TIMESTAMPTZ DEFAULT NULL) RETURNS INTEGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    r RECORD;
    n INTEGER := 0;
    v_owed BIGINT;
BEGIN
    FOR r IN
        WITH due AS (
            SELECT pc.user_id, pc.seq FROM pending_credits pc
             WHERE pc.clears_at <= coalesce(p_now, clock_timestamp())
             ORDER BY pc.clears_at
             LIMIT p_limit
               FOR UPDATE SKIP LOCKED
        )
        SELECT pc.user_id, pc.seq, pc.entry_id, pc.amount, pc.type
          FROM pending_credits pc JOIN due USING (user_id, seq)
         ORDER BY pc.user_id, pc.seq
    LOOP
        PERFORM ledger_append(r.user_id, 'clearing', r.amount, 'clearing:' || r.entry_id, 'clearing', r.entry_id::text,
                              jsonb_build_object('cleared_type', r.type), NULL, NULL, r.entry_id);
        DELETE FROM pending_credits WHERE user_id = r.user_id AND seq = r.seq;
        SELECT least(b.recovery, r.amount) INTO v_owed FROM balances b WHERE b.user_id = r.user_id;
        IF v_owed > 0 THEN
            PERFORM ledger_append(r.user_id, 'recovery_payment', -v_owed, 'recovery_payment:' || r.entry_id, 'clearing',
                                  r.entry_id::text, jsonb_build_object('cleared_type', r.type), NULL, NULL, r.entry_id);
        END IF;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
