-- ledger_bucket_deltas: the current body (first made by 0060_balance_buckets.sql, last changed by 0110_ledger_recovery.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- How one entry moves the pending, available and held buckets. Every total in balances is the sum
-- of these over the user's entries (verify-ledger checks exactly that). A 'recovery' moves none of
-- them (only the recovery bucket: ledger_recovery_delta).
CREATE OR REPLACE FUNCTION ledger_bucket_deltas(
    p_type TEXT, p_amount BIGINT, p_pending BOOLEAN,
    OUT d_pending BIGINT, OUT d_available BIGINT, OUT d_held BIGINT
)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_type = 'clearing' THEN -p_amount
                WHEN p_type = 'reversal' THEN p_amount
                WHEN p_pending THEN p_amount ELSE 0 END,
           CASE WHEN p_type IN ('reversal', 'payout_paid', 'recovery') OR p_pending THEN 0 ELSE p_amount END,
           CASE WHEN p_type IN ('payout_hold', 'payout_release') THEN -p_amount
                WHEN p_type = 'payout_paid' THEN p_amount ELSE 0 END
$$;
