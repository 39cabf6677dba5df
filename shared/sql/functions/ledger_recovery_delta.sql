-- ledger_recovery_delta: the current body (first made by 0110_ledger_recovery.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- How one entry moves the recovery bucket (balances.recovery is the sum of these; verify-ledger
-- rebuilds it from the entries).
CREATE OR REPLACE FUNCTION ledger_recovery_delta(p_type TEXT, p_amount BIGINT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_type WHEN 'recovery' THEN -p_amount WHEN 'recovery_payment' THEN p_amount ELSE 0 END
$$;
