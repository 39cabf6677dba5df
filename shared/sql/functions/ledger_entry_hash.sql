-- ledger_entry_hash: the current body (first made by 0010_ledger.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- The chained hash of one entry. Timestamps enter as integer microseconds, so the text hashed does
-- not depend on the session's time zone or date style.
CREATE OR REPLACE FUNCTION ledger_entry_hash(
    p_prev BYTEA, p_user_id UUID, p_seq BIGINT, p_type TEXT, p_amount BIGINT, p_balance_after BIGINT,
    p_key TEXT, p_created_at TIMESTAMPTZ
) RETURNS BYTEA
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256(p_prev || convert_to(concat_ws('|',
        p_user_id::text, p_seq::text, p_type, p_amount::text, p_balance_after::text, p_key,
        floor(extract(epoch FROM p_created_at) * 1000000)::bigint::text), 'UTF8'))
$$;
