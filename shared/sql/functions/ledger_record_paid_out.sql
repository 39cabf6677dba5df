-- ledger_record_paid_out: the current body (first made by 0010_ledger.sql, last changed by 0060_balance_buckets.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- The previous release records a paid payout with this (no payout id): it now posts the same
-- 'payout_paid' entry, keyed by the transaction, so its payouts reconcile too until it is retired.
CREATE OR REPLACE FUNCTION ledger_record_paid_out(p_user_id UUID, p_amount BIGINT) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF p_amount <= 0 THEN
        RAISE EXCEPTION 'paid-out amount must be positive' USING ERRCODE = 'EP004';
    END IF;
    PERFORM ledger_append(p_user_id, 'payout_paid', -p_amount, 'payout_paid:legacy:' || txid_current() || ':' || p_user_id,
                          'payouts', NULL, NULL, NULL, NULL, NULL);
END
$$;
