-- ledger_append: the current body (first made by 0060_balance_buckets.sql, last changed by 0110_ledger_recovery.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- The one writer of the ledger. Errors (SQLSTATE): EP001 insufficient available funds, EP002
-- unknown user, EP003 the key was used for a different entry, EP005 only a credit can be pending,
-- EP006 a bucket (pending, held or recovery) would go negative. A recovery reduces lifetime_earned
-- as a reversal does (money taken back was not earned after all). Not granted to the application:
-- it calls the narrower functions (ledger_post, ledger_post_pending, ...).
CREATE OR REPLACE FUNCTION ledger_append(
    p_user_id UUID, p_type TEXT, p_amount BIGINT, p_key TEXT, p_source TEXT, p_reference TEXT, p_metadata JSONB,
    p_clears_at TIMESTAMPTZ, p_awaiting TEXT, p_original BIGINT
) RETURNS TABLE (entry_id BIGINT, entry_seq BIGINT, entry_balance_after BIGINT, entry_created_at TIMESTAMPTZ, duplicate BOOLEAN)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    b balances%ROWTYPE;
    e RECORD;
    d RECORD;
    v_pending BOOLEAN := p_clears_at IS NOT NULL;
    v_seq BIGINT;
    v_after BIGINT;
    v_pending_after BIGINT;
    v_held_after BIGINT;
    v_recovery_after BIGINT;
    v_at TIMESTAMPTZ;
    v_hash BYTEA;
    v_id BIGINT;
    v_problem TEXT;
BEGIN
    SELECT * INTO b FROM balances WHERE user_id = p_user_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no balance for user %', p_user_id USING ERRCODE = 'EP002';
    END IF;

    d := ledger_bucket_deltas(p_type, p_amount, v_pending);
    v_after := b.available + d.d_available;
    v_pending_after := b.pending + d.d_pending;
    v_held_after := b.held + d.d_held;
    v_recovery_after := b.recovery + ledger_recovery_delta(p_type, p_amount);
    v_problem := CASE
        WHEN v_pending AND NOT (ledger_is_earning(p_type) AND p_amount > 0) THEN 'EP005 pending'
        WHEN (p_awaiting IS NULL) <> (p_clears_at IS NULL OR p_clears_at < 'infinity') THEN 'EP005 awaits'
        WHEN v_after < 0 THEN 'EP001'
        WHEN v_pending_after < 0 OR v_held_after < 0 OR v_recovery_after < 0 THEN 'EP006'
    END;

    IF v_problem IS NULL THEN
        v_seq := b.entry_count + 1;
        v_at := clock_timestamp();
        v_hash := ledger_entry_hash_v2(b.last_entry_hash, p_user_id, v_seq, p_type, p_amount, v_after, p_key, v_at,
                                       v_pending_after, v_held_after, v_pending, p_original);
        -- The key's unique index is the idempotency check: no separate look-up on the way in (on the
        -- hash-partitioned table that look-up cost more than the insert). The balances row lock
        -- above means no other writer can hold this user's key uncommitted.
        INSERT INTO earnings (user_id, seq, type, amount, balance_after, idempotency_key, source, reference, metadata,
                              prev_hash, hash, created_at, pending, pending_after, held_after, original_entry_id)
        VALUES (p_user_id, v_seq, p_type, p_amount, v_after, p_key, p_source, p_reference, p_metadata,
                b.last_entry_hash, v_hash, v_at, v_pending, v_pending_after, v_held_after, p_original)
        ON CONFLICT (user_id, idempotency_key) DO NOTHING
        RETURNING id INTO v_id;
    END IF;

    IF v_id IS NULL THEN
        -- The key was used before, or a check failed. A retry of an entry already made is answered
        -- with that entry, whatever the balances are now; otherwise the check's error.
        SELECT x.id, x.seq, x.balance_after, x.created_at, x.type, x.amount INTO e
          FROM earnings x WHERE x.user_id = p_user_id AND x.idempotency_key = p_key;
        IF FOUND THEN
            IF e.type <> p_type OR e.amount <> p_amount THEN
                RAISE EXCEPTION 'idempotency key % was used for a different entry', p_key USING ERRCODE = 'EP003';
            END IF;
            RETURN QUERY SELECT e.id, e.seq, e.balance_after, e.created_at, true;
            RETURN;
        END IF;
        CASE v_problem
            WHEN 'EP005 pending' THEN
                RAISE EXCEPTION 'only a credit can be pending (type %, amount %)', p_type, p_amount USING ERRCODE = 'EP005';
            WHEN 'EP005 awaits' THEN
                RAISE EXCEPTION 'a pending entry clears at a time or awaits a condition, not both' USING ERRCODE = 'EP005';
            WHEN 'EP001' THEN
                RAISE EXCEPTION 'insufficient funds: available %, requested %', b.available, -d.d_available USING ERRCODE = 'EP001';
            WHEN 'EP006' THEN
                RAISE EXCEPTION 'the % entry would leave a bucket negative (pending %, held %, recovery %)',
                    p_type, v_pending_after, v_held_after, v_recovery_after USING ERRCODE = 'EP006';
            ELSE  -- the key conflicted, yet no entry of this user holds it: not a state the ledger can be in
                RAISE EXCEPTION 'idempotency key % conflicted but no entry of user % holds it', p_key, p_user_id;
        END CASE;
    END IF;

    IF v_pending THEN
        INSERT INTO pending_credits (user_id, seq, entry_id, type, amount, clears_at, awaiting)
        VALUES (p_user_id, v_seq, v_id, p_type, p_amount, p_clears_at, p_awaiting);
    END IF;

    UPDATE balances
       SET available = v_after,
           pending = v_pending_after,
           held = v_held_after,
           recovery = v_recovery_after,
           lifetime_earned = lifetime_earned
               + CASE WHEN ledger_is_earning(p_type) AND p_amount > 0 THEN p_amount
                      WHEN p_type IN ('reversal', 'recovery') THEN p_amount ELSE 0 END,
           lifetime_paid_out = lifetime_paid_out + CASE WHEN p_type = 'payout_paid' THEN -p_amount ELSE 0 END,
           entry_count = v_seq,
           last_entry_hash = v_hash,
           updated_at = v_at
     WHERE user_id = p_user_id;

    RETURN QUERY SELECT v_id, v_seq, v_after, v_at, false;
END
$$;
