-- ledger_entry_hash_v2: the current body (first made by 0060_balance_buckets.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- The chained hash of an entry with buckets: the old fields plus pending_after, held_after, the
-- pending flag and the original entry, so none of them can be changed without breaking the chain.
CREATE OR REPLACE FUNCTION ledger_entry_hash_v2(
    p_prev BYTEA, p_user_id UUID, p_seq BIGINT, p_type TEXT, p_amount BIGINT, p_balance_after BIGINT,
    p_key TEXT, p_created_at TIMESTAMPTZ, p_pending_after BIGINT, p_held_after BIGINT, p_pending BOOLEAN, p_original BIGINT
) RETURNS BYTEA
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256(p_prev || convert_to(concat_ws('|',
        p_user_id::text, p_seq::text, p_type, p_amount::text, p_balance_after::text, p_key,
        floor(extract(epoch FROM p_created_at) * 1000000)::bigint::text,
        'v2', p_pending_after::text, p_held_after::text, CASE WHEN p_pending THEN 'p' ELSE 'a' END,
        coalesce(p_original::text, '-')), 'UTF8'))
$$;
