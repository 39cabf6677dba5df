-- lifetime_earned is GROSS earnings: the sum of positive earning entries (rewards, bonuses,
-- commissions, positive adjustments). 0010 counted adjustments with their sign, so a clawback after
-- a payout release could drive it below zero and trip its CHECK (found by the property test).
-- A negative adjustment is a correction visible in the history; it does not un-earn.
-- Only the function body changes (CREATE OR REPLACE keeps its grants).

CREATE OR REPLACE FUNCTION ledger_post(
    p_user_id UUID, p_type TEXT, p_amount BIGINT, p_key TEXT, p_source TEXT,
    p_reference TEXT DEFAULT NULL, p_metadata JSONB DEFAULT NULL
) RETURNS TABLE (entry_id BIGINT, entry_seq BIGINT, entry_balance_after BIGINT, entry_created_at TIMESTAMPTZ, duplicate BOOLEAN)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    b balances%ROWTYPE;
    e RECORD;
    v_seq BIGINT;
    v_after BIGINT;
    v_at TIMESTAMPTZ;
    v_hash BYTEA;
    v_id BIGINT;
BEGIN
    SELECT * INTO b FROM balances WHERE user_id = p_user_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no balance for user %', p_user_id USING ERRCODE = 'EP002';
    END IF;

    SELECT x.id, x.seq, x.balance_after, x.created_at, x.type, x.amount INTO e
      FROM earnings x WHERE x.user_id = p_user_id AND x.idempotency_key = p_key;
    IF FOUND THEN
        IF e.type <> p_type OR e.amount <> p_amount THEN
            RAISE EXCEPTION 'idempotency key % was used for a different entry', p_key USING ERRCODE = 'EP003';
        END IF;
        RETURN QUERY SELECT e.id, e.seq, e.balance_after, e.created_at, true;
        RETURN;
    END IF;

    v_after := b.available + p_amount;
    IF v_after < 0 THEN
        RAISE EXCEPTION 'insufficient funds: available %, requested %', b.available, -p_amount USING ERRCODE = 'EP001';
    END IF;
    v_seq := b.entry_count + 1;
    v_at := clock_timestamp();
    v_hash := ledger_entry_hash(b.last_entry_hash, p_user_id, v_seq, p_type, p_amount, v_after, p_key, v_at);

    INSERT INTO earnings (user_id, seq, type, amount, balance_after, idempotency_key, source, reference, metadata,
                          prev_hash, hash, created_at)
    VALUES (p_user_id, v_seq, p_type, p_amount, v_after, p_key, p_source, p_reference, p_metadata,
            b.last_entry_hash, v_hash, v_at)
    RETURNING id INTO v_id;

    UPDATE balances
       SET available = v_after,
           lifetime_earned = lifetime_earned + CASE WHEN ledger_is_earning(p_type) AND p_amount > 0 THEN p_amount ELSE 0 END,
           entry_count = v_seq,
           last_entry_hash = v_hash,
           updated_at = v_at
     WHERE user_id = p_user_id;

    RETURN QUERY SELECT v_id, v_seq, v_after, v_at, false;
END
$$;

