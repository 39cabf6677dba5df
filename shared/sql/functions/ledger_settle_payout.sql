-- ledger_settle_payout: the current body (first made by 0060_balance_buckets.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- A payout the provider paid: its held amount leaves the ledger with a 'payout_paid' entry, once per
-- payout (key 'payout_paid:<payout id>'); lifetime_paid_out is the sum of these entries.
CREATE OR REPLACE FUNCTION ledger_settle_payout(p_user_id UUID, p_payout_id UUID, p_amount BIGINT) RETURNS BIGINT
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_id BIGINT;
BEGIN
    IF p_amount <= 0 THEN
        RAISE EXCEPTION 'paid-out amount must be positive' USING ERRCODE = 'EP004';
    END IF;
    SELECT a.entry_id INTO v_id
      FROM ledger_append(p_user_id, 'payout_paid', -p_amount, 'payout_paid:' || p_payout_id, 'payouts', p_payout_id::text,
                         NULL, NULL, NULL, NULL) a;
    RETURN v_id;
END
$$;
