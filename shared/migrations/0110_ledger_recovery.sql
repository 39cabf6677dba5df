-- Partner rewards in the ledger, and recoveries: money taken back after it cleared.
--
-- A partner (rewarded-video network or offerwall) can reverse a reward days later (a chargeback).
-- While the reward is pending, the clearing branch's clawback takes it back (a 'reversal' entry).
-- Once it cleared (or was paid out) nothing may be taken from available silently and no bucket may
-- go negative, so the amount becomes a RECOVERY: a fifth bucket, what the user owes back. Later
-- clearings pay it off first: each 'clearing' entry is followed, in the same transaction, by a
-- 'recovery_payment' that moves up to the owed amount out of what just became available.
--
--   'partner_reward'    a credit from a partner callback (pending for the partner's clearing period)
--   'recovery'          amount < 0: recovery += -amount (original_entry_id: the cleared credit); no
--                       other bucket moves
--   'recovery_payment'  amount < 0: available += amount, recovery += amount (original_entry_id: the
--                       credit whose clearing paid it)
--
-- Expand only: new columns have constant defaults, the CHECKs widen, and every function keeps its
-- signature. The hash chain covers the new entries through type, amount and original_entry_id;
-- balances.recovery is rebuilt from entries by verify-ledger (ledger_recovery_delta). See
-- docs/ledger.md, "Recoveries".

ALTER TABLE balances ADD COLUMN recovery BIGINT NOT NULL DEFAULT 0 CHECK (recovery >= 0);

ALTER TABLE earnings DROP CONSTRAINT earnings_type_check;
ALTER TABLE earnings ADD CONSTRAINT earnings_type_check CHECK (type IN (
    'video_reward', 'login_bonus', 'streak_bonus', 'referral_bonus', 'referral_commission',
    'adjustment', 'payout_hold', 'payout_release', 'clearing', 'reversal', 'payout_paid',
    'partner_reward', 'recovery', 'recovery_payment'));
ALTER TABLE earnings DROP CONSTRAINT earnings_check;
ALTER TABLE earnings ADD CONSTRAINT earnings_check CHECK (CASE type
    WHEN 'payout_hold' THEN amount < 0
    WHEN 'reversal' THEN amount < 0
    WHEN 'payout_paid' THEN amount < 0
    WHEN 'recovery' THEN amount < 0
    WHEN 'recovery_payment' THEN amount < 0
    WHEN 'adjustment' THEN true
    ELSE amount > 0 END);
ALTER TABLE earnings DROP CONSTRAINT earnings_bucket_columns_check;
ALTER TABLE earnings ADD CONSTRAINT earnings_bucket_columns_check CHECK (
    (pending_after IS NULL) = (held_after IS NULL)
    AND (NOT pending OR (type IN ('video_reward', 'login_bonus', 'streak_bonus', 'referral_bonus', 'referral_commission',
                                  'adjustment', 'partner_reward')
                         AND amount > 0))
    -- clearing, reversal and the recovery entries always say which credit they act on
    AND ((type IN ('clearing', 'reversal', 'recovery', 'recovery_payment')) = (original_entry_id IS NOT NULL)));

-- A partner reward is earned money like a video reward (lifetime_earned counts it).
CREATE OR REPLACE FUNCTION ledger_is_earning(p_type TEXT) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_type IN ('video_reward', 'login_bonus', 'streak_bonus', 'referral_bonus', 'referral_commission', 'adjustment',
                      'partner_reward')
$$;

-- Same as 0060 but a 'recovery' moves none of pending, available and held (only the recovery bucket).
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

-- How one entry moves the recovery bucket (balances.recovery is the sum of these).
CREATE FUNCTION ledger_recovery_delta(p_type TEXT, p_amount BIGINT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_type WHEN 'recovery' THEN -p_amount WHEN 'recovery_payment' THEN p_amount ELSE 0 END
$$;

-- 0060's ledger_append with the recovery bucket: it may never go negative either (EP006), and a
-- recovery reduces lifetime_earned as a reversal does (money taken back was not earned after all).
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

    IF v_pending AND NOT (ledger_is_earning(p_type) AND p_amount > 0) THEN
        RAISE EXCEPTION 'only a credit can be pending (type %, amount %)', p_type, p_amount USING ERRCODE = 'EP005';
    END IF;
    IF (p_awaiting IS NULL) <> (p_clears_at IS NULL OR p_clears_at < 'infinity') THEN
        RAISE EXCEPTION 'a pending entry clears at a time or awaits a condition, not both' USING ERRCODE = 'EP005';
    END IF;

    d := ledger_bucket_deltas(p_type, p_amount, v_pending);
    v_after := b.available + d.d_available;
    v_pending_after := b.pending + d.d_pending;
    v_held_after := b.held + d.d_held;
    v_recovery_after := b.recovery + ledger_recovery_delta(p_type, p_amount);
    IF v_after < 0 THEN
        RAISE EXCEPTION 'insufficient funds: available %, requested %', b.available, -d.d_available USING ERRCODE = 'EP001';
    END IF;
    IF v_pending_after < 0 OR v_held_after < 0 OR v_recovery_after < 0 THEN
        RAISE EXCEPTION 'the % entry would leave a bucket negative (pending %, held %, recovery %)',
            p_type, v_pending_after, v_held_after, v_recovery_after USING ERRCODE = 'EP006';
    END IF;
    v_seq := b.entry_count + 1;
    v_at := clock_timestamp();
    v_hash := ledger_entry_hash_v2(b.last_entry_hash, p_user_id, v_seq, p_type, p_amount, v_after, p_key, v_at,
                                   v_pending_after, v_held_after, v_pending, p_original);

    INSERT INTO earnings (user_id, seq, type, amount, balance_after, idempotency_key, source, reference, metadata,
                          prev_hash, hash, created_at, pending, pending_after, held_after, original_entry_id)
    VALUES (p_user_id, v_seq, p_type, p_amount, v_after, p_key, p_source, p_reference, p_metadata,
            b.last_entry_hash, v_hash, v_at, v_pending, v_pending_after, v_held_after, p_original)
    RETURNING id INTO v_id;

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

-- 0060's clearing job, paying recoveries first: right after an entry clears, what the user owes
-- back (up to the cleared amount) leaves available again as a 'recovery_payment', exactly once
-- (key 'recovery_payment:<entry id>'), in the same transaction. A user with nothing owed gets
-- exactly the entries 0060 wrote.
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

-- Takes a credit back whatever became of it: pending, it is clawed back (ledger_reverse, a
-- 'reversal'); cleared (available, held or paid out), the user owes it back ('recovery', key
-- 'recovery:<entry id>'). Twice: the first answer with duplicate = true. `recovered` says which.
-- Errors: EP030 no such entry of this user, EP032 the entry is not a credit.
CREATE FUNCTION ledger_recover(p_user_id UUID, p_entry_id BIGINT, p_source TEXT, p_metadata JSONB)
RETURNS TABLE (entry_id BIGINT, entry_seq BIGINT, entry_balance_after BIGINT, entry_created_at TIMESTAMPTZ, duplicate BOOLEAN,
               reversed_amount BIGINT, recovered BOOLEAN)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    e RECORD;
BEGIN
    -- Waits for a clearing in progress on this entry (it locks the row), then sees it gone.
    PERFORM 1 FROM pending_credits pc WHERE pc.user_id = p_user_id AND pc.entry_id = p_entry_id FOR UPDATE;
    IF FOUND OR EXISTS (SELECT 1 FROM earnings x WHERE x.user_id = p_user_id AND x.idempotency_key = 'reversal:' || p_entry_id) THEN
        RETURN QUERY SELECT r.*, false FROM ledger_reverse(p_user_id, p_entry_id, p_source, p_metadata) r;
        RETURN;
    END IF;
    SELECT x.type, x.amount INTO e FROM earnings x WHERE x.user_id = p_user_id AND x.id = p_entry_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no entry % for user %', p_entry_id, p_user_id USING ERRCODE = 'EP030';
    END IF;
    IF NOT (ledger_is_earning(e.type) AND e.amount > 0) THEN
        RAISE EXCEPTION 'entry % is not a credit', p_entry_id USING ERRCODE = 'EP032';
    END IF;
    RETURN QUERY SELECT a.*, e.amount, true
      FROM ledger_append(p_user_id, 'recovery', -e.amount, 'recovery:' || p_entry_id, p_source, p_entry_id::text,
                         p_metadata, NULL, NULL, p_entry_id) a;
END
$$;

REVOKE ALL ON FUNCTION ledger_recover(UUID, BIGINT, TEXT, JSONB) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_recover(UUID, BIGINT, TEXT, JSONB) TO earnpay_app;
