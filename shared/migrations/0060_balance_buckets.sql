-- Balances in buckets: pending, available and held; clearing, clawback and settled payouts as entries.
--
-- A credit no longer has to be spendable the moment it is posted. It can land in PENDING with a
-- clearing time; a scheduled job (ledger_clear_due, maintenance task `clearing`) later moves it to
-- AVAILABLE with a 'clearing' entry, exactly once; until then staff (or the risk engine) can take
-- it back with a 'reversal' entry. A payout request moves money from AVAILABLE to HELD
-- ('payout_hold'), a failed or cancelled one moves it back ('payout_release'), and a paid one leaves
-- HELD for good ('payout_paid'), so lifetime_paid_out is rebuilt from entries like every other total.
--
-- Expand/contract: every change here keeps the previous release working. New columns are nullable
-- or have constant defaults (metadata-only on the 10M-row ledger), ledger_post keeps its signature
-- and its meaning for the previous release's calls (straight to available), and entries written
-- before this migration keep their hashes (the bucket-aware hash applies to entries that carry the
-- new columns). Existing balances become available: nothing is pending after this migration.
-- See docs/ledger.md, "Buckets and clearing".

-- --- balances: two more buckets ------------------------------------------------------------------
ALTER TABLE balances
    ADD COLUMN pending BIGINT NOT NULL DEFAULT 0 CHECK (pending >= 0),
    ADD COLUMN held    BIGINT NOT NULL DEFAULT 0 CHECK (held >= 0);

-- --- entries: which bucket each one moves ----------------------------------------------------------
-- pending: a credit that landed in the pending bucket (to be cleared or reversed later).
-- pending_after / held_after: the two new buckets after the entry (balance_after stays "available
-- after"); NULL on entries written before this migration, which the old hash covers.
-- original_entry_id: the entry a 'clearing' or 'reversal' acts on.
ALTER TABLE earnings
    ADD COLUMN pending           BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN pending_after     BIGINT CHECK (pending_after >= 0),
    ADD COLUMN held_after        BIGINT CHECK (held_after >= 0),
    ADD COLUMN original_entry_id BIGINT;

-- The type and sign rules gain the three new kinds of entry. The previous release never writes
-- them, so widening the CHECKs cannot break it. (Re-validating scans the ledger once: CHECKs on a
-- partitioned table cannot be added NOT VALID.)
ALTER TABLE earnings DROP CONSTRAINT earnings_type_check;
ALTER TABLE earnings ADD CONSTRAINT earnings_type_check CHECK (type IN (
    'video_reward', 'login_bonus', 'streak_bonus', 'referral_bonus', 'referral_commission',
    'adjustment', 'payout_hold', 'payout_release', 'clearing', 'reversal', 'payout_paid'));
ALTER TABLE earnings DROP CONSTRAINT earnings_check;
ALTER TABLE earnings ADD CONSTRAINT earnings_check CHECK (CASE type
    WHEN 'payout_hold' THEN amount < 0
    WHEN 'reversal' THEN amount < 0
    WHEN 'payout_paid' THEN amount < 0
    WHEN 'adjustment' THEN true
    ELSE amount > 0 END);
ALTER TABLE earnings ADD CONSTRAINT earnings_bucket_columns_check CHECK (
    (pending_after IS NULL) = (held_after IS NULL)
    -- only a credit can wait in pending
    AND (NOT pending OR (type IN ('video_reward', 'login_bonus', 'streak_bonus', 'referral_bonus', 'referral_commission', 'adjustment')
                         AND amount > 0))
    -- clearing and reversal always say what they clear or reverse
    AND ((type IN ('clearing', 'reversal')) = (original_entry_id IS NOT NULL)));

-- How one entry moves the three buckets. Every total in balances is the sum of these over the
-- user's entries (verify-ledger checks exactly that).
CREATE FUNCTION ledger_bucket_deltas(
    p_type TEXT, p_amount BIGINT, p_pending BOOLEAN,
    OUT d_pending BIGINT, OUT d_available BIGINT, OUT d_held BIGINT
)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_type = 'clearing' THEN -p_amount
                WHEN p_type = 'reversal' THEN p_amount
                WHEN p_pending THEN p_amount ELSE 0 END,
           CASE WHEN p_type IN ('reversal', 'payout_paid') OR p_pending THEN 0 ELSE p_amount END,
           CASE WHEN p_type IN ('payout_hold', 'payout_release') THEN -p_amount
                WHEN p_type = 'payout_paid' THEN p_amount ELSE 0 END
$$;

-- The chained hash of an entry with buckets: the old fields plus pending_after, held_after, the
-- pending flag and the original entry, so none of them can be changed without breaking the chain.
CREATE FUNCTION ledger_entry_hash_v2(
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

-- The credits waiting in pending: one row per pending entry, deleted when it clears or is reversed,
-- so the table (and its index on the clearing time) holds only uncleared entries: a few days of
-- credits, however large the ledger grows. clears_at is 'infinity' while the entry awaits a
-- condition (a referral that has not qualified yet: `awaiting` names it); that condition sets a
-- real time, or reverses the entry. The application role reads it; only the SECURITY DEFINER
-- functions below write it.
CREATE TABLE pending_credits (
    user_id    UUID NOT NULL REFERENCES users (id),
    seq        BIGINT NOT NULL,
    entry_id   BIGINT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    amount     BIGINT NOT NULL CHECK (amount > 0),
    clears_at  TIMESTAMPTZ NOT NULL,
    awaiting   TEXT CHECK (length(awaiting) BETWEEN 1 AND 200),
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (user_id, seq),
    CHECK ((awaiting IS NULL) = (clears_at < 'infinity'))
);
-- What the clearing job reads: due rows, soonest first. Partial: awaiting rows never become due.
CREATE INDEX idx_pending_credits_due ON pending_credits (clears_at) WHERE clears_at < 'infinity';
-- Settling a condition (a referral qualifies or expires) finds its rows.
CREATE INDEX idx_pending_credits_awaiting ON pending_credits (awaiting) WHERE awaiting IS NOT NULL;

GRANT SELECT ON pending_credits TO earnpay_app;

-- --- posting ---------------------------------------------------------------------------------------
-- The one writer of the ledger. Errors (SQLSTATE): EP001 insufficient available funds, EP002
-- unknown user, EP003 the key was used for a different entry, EP005 only a credit can be pending,
-- EP006 a bucket (pending or held) would go negative. Not granted to the application: it calls the
-- narrower functions below.
CREATE FUNCTION ledger_append(
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
    IF v_after < 0 THEN
        RAISE EXCEPTION 'insufficient funds: available %, requested %', b.available, -d.d_available USING ERRCODE = 'EP001';
    END IF;
    IF v_pending_after < 0 OR v_held_after < 0 THEN
        RAISE EXCEPTION 'the % entry would leave a bucket negative (pending %, held %)', p_type, v_pending_after, v_held_after
            USING ERRCODE = 'EP006';
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

    -- lifetime_earned: gross credits, less what was clawed back before it cleared;
    -- lifetime_paid_out: what left held for good.
    UPDATE balances
       SET available = v_after,
           pending = v_pending_after,
           held = v_held_after,
           lifetime_earned = lifetime_earned
               + CASE WHEN ledger_is_earning(p_type) AND p_amount > 0 THEN p_amount
                      WHEN p_type = 'reversal' THEN p_amount ELSE 0 END,
           lifetime_paid_out = lifetime_paid_out + CASE WHEN p_type = 'payout_paid' THEN -p_amount ELSE 0 END,
           entry_count = v_seq,
           last_entry_hash = v_hash,
           updated_at = v_at
     WHERE user_id = p_user_id;

    RETURN QUERY SELECT v_id, v_seq, v_after, v_at, false;
END
$$;

-- The previous release's entry point, same signature and grants: an entry straight to (or out of)
-- available, as before; holds and releases now also move the held bucket. Clearing and reversal
-- have their own functions (they must find and remove the pending row), so they are refused here.
CREATE OR REPLACE FUNCTION ledger_post(
    p_user_id UUID, p_type TEXT, p_amount BIGINT, p_key TEXT, p_source TEXT,
    p_reference TEXT DEFAULT NULL, p_metadata JSONB DEFAULT NULL
) RETURNS TABLE (entry_id BIGINT, entry_seq BIGINT, entry_balance_after BIGINT, entry_created_at TIMESTAMPTZ, duplicate BOOLEAN)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF p_type IN ('clearing', 'reversal') THEN
        RAISE EXCEPTION '% entries are posted by ledger_clear_due and ledger_reverse only', p_type USING ERRCODE = 'EP005';
    END IF;
    RETURN QUERY SELECT * FROM ledger_append(p_user_id, p_type, p_amount, p_key, p_source, p_reference, p_metadata, NULL, NULL, NULL);
END
$$;

-- A credit into pending: it clears at p_clears_at, or ('infinity' with p_awaiting) when the named
-- condition is settled by ledger_settle_awaiting.
CREATE FUNCTION ledger_post_pending(
    p_user_id UUID, p_type TEXT, p_amount BIGINT, p_key TEXT, p_source TEXT, p_reference TEXT, p_metadata JSONB,
    p_clears_at TIMESTAMPTZ, p_awaiting TEXT
) RETURNS TABLE (entry_id BIGINT, entry_seq BIGINT, entry_balance_after BIGINT, entry_created_at TIMESTAMPTZ, duplicate BOOLEAN)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF p_clears_at IS NULL THEN
        RAISE EXCEPTION 'a pending credit needs its clearing time' USING ERRCODE = 'EP005';
    END IF;
    RETURN QUERY SELECT * FROM ledger_append(p_user_id, p_type, p_amount, p_key, p_source, p_reference, p_metadata,
                                             p_clears_at, p_awaiting, NULL);
END
$$;

-- --- clearing --------------------------------------------------------------------------------------
-- Clears up to p_limit due entries (clears_at <= p_now) in the caller's transaction and returns how
-- many. Rows are claimed with SKIP LOCKED, so concurrent runs take disjoint rows and a reversal in
-- progress is skipped; then processed in (user, seq) order, so two runs take balance locks in one
-- order and cannot deadlock. Exactly once: the clearing entry's key is 'clearing:<entry id>' and the
-- pending row is deleted in the same transaction.
CREATE FUNCTION ledger_clear_due(p_limit INTEGER, p_now TIMESTAMPTZ DEFAULT NULL) RETURNS INTEGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    r RECORD;
    n INTEGER := 0;
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
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- --- clawback --------------------------------------------------------------------------------------
-- Reverses a pending credit: a 'reversal' entry of minus its amount that points at it. Reversing
-- twice returns the first reversal (duplicate = true). Errors: EP030 no such entry of this user,
-- EP031 the entry is not pending (it cleared, or was never pending): money that reached available
-- is never taken back silently. Locks the pending row first, as the clearing job does.
CREATE FUNCTION ledger_reverse(p_user_id UUID, p_entry_id BIGINT, p_source TEXT, p_metadata JSONB)
RETURNS TABLE (entry_id BIGINT, entry_seq BIGINT, entry_balance_after BIGINT, entry_created_at TIMESTAMPTZ, duplicate BOOLEAN,
               reversed_amount BIGINT)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    r RECORD;
    e RECORD;
BEGIN
    SELECT pc.seq, pc.amount INTO r FROM pending_credits pc
     WHERE pc.user_id = p_user_id AND pc.entry_id = p_entry_id FOR UPDATE;
    IF NOT FOUND THEN
        SELECT x.id, x.seq, x.balance_after, x.created_at, x.amount INTO e
          FROM earnings x WHERE x.user_id = p_user_id AND x.idempotency_key = 'reversal:' || p_entry_id;
        IF FOUND THEN
            RETURN QUERY SELECT e.id, e.seq, e.balance_after, e.created_at, true, -e.amount;
            RETURN;
        END IF;
        IF NOT EXISTS (SELECT 1 FROM earnings x WHERE x.user_id = p_user_id AND x.id = p_entry_id) THEN
            RAISE EXCEPTION 'no entry % for user %', p_entry_id, p_user_id USING ERRCODE = 'EP030';
        END IF;
        RAISE EXCEPTION 'entry % is not pending: it cleared or was never pending', p_entry_id USING ERRCODE = 'EP031';
    END IF;
    RETURN QUERY SELECT a.*, r.amount
      FROM ledger_append(p_user_id, 'reversal', -r.amount, 'reversal:' || p_entry_id, p_source, p_entry_id::text,
                         p_metadata, NULL, NULL, p_entry_id) a;
    DELETE FROM pending_credits pc WHERE pc.user_id = p_user_id AND pc.seq = r.seq;
END
$$;

-- Settles a condition pending credits await: with p_clears_at, they clear at that time from now on
-- (the clearing job picks them up); with NULL, the condition failed and every one of them is
-- reversed (source 'expiry'). Returns how many rows it settled. Rows are taken in (user, seq) order.
CREATE FUNCTION ledger_settle_awaiting(p_awaiting TEXT, p_clears_at TIMESTAMPTZ, p_metadata JSONB DEFAULT NULL)
RETURNS INTEGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    r RECORD;
    n INTEGER := 0;
BEGIN
    IF p_clears_at IS NOT NULL THEN
        IF p_clears_at = 'infinity' THEN
            RAISE EXCEPTION 'settling needs a real clearing time' USING ERRCODE = 'EP005';
        END IF;
        WITH s AS (
            UPDATE pending_credits SET clears_at = p_clears_at, awaiting = NULL
             WHERE awaiting = p_awaiting
            RETURNING 1
        ) SELECT count(*) INTO n FROM s;
        RETURN n;
    END IF;
    FOR r IN SELECT pc.user_id, pc.entry_id FROM pending_credits pc WHERE pc.awaiting = p_awaiting ORDER BY pc.user_id, pc.seq LOOP
        PERFORM ledger_reverse(r.user_id, r.entry_id, 'expiry',
                               coalesce(p_metadata, '{}'::jsonb) || jsonb_build_object('awaiting', p_awaiting));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- --- paid-out money in the ledger ------------------------------------------------------------------
-- A payout the provider paid: its held amount leaves the ledger with a 'payout_paid' entry, once per
-- payout (key 'payout_paid:<payout id>'); lifetime_paid_out is the sum of these entries.
CREATE FUNCTION ledger_settle_payout(p_user_id UUID, p_payout_id UUID, p_amount BIGINT) RETURNS BIGINT
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

REVOKE ALL ON FUNCTION ledger_append(UUID, TEXT, BIGINT, TEXT, TEXT, TEXT, JSONB, TIMESTAMPTZ, TEXT, BIGINT) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_post_pending(UUID, TEXT, BIGINT, TEXT, TEXT, TEXT, JSONB, TIMESTAMPTZ, TEXT) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_clear_due(INTEGER, TIMESTAMPTZ) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_reverse(UUID, BIGINT, TEXT, JSONB) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_settle_awaiting(TEXT, TIMESTAMPTZ, JSONB) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_settle_payout(UUID, UUID, BIGINT) FROM PUBLIC;
-- The app posts pending credits, reverses (staff clawback), settles referral conditions and records
-- paid payouts. Clearing is the maintenance task's (schema owner) alone.
GRANT EXECUTE ON FUNCTION ledger_post_pending(UUID, TEXT, BIGINT, TEXT, TEXT, TEXT, JSONB, TIMESTAMPTZ, TEXT) TO earnpay_app;
GRANT EXECUTE ON FUNCTION ledger_reverse(UUID, BIGINT, TEXT, JSONB) TO earnpay_app;
GRANT EXECUTE ON FUNCTION ledger_settle_awaiting(TEXT, TIMESTAMPTZ, JSONB) TO earnpay_app;
GRANT EXECUTE ON FUNCTION ledger_settle_payout(UUID, UUID, BIGINT) TO earnpay_app;

-- --- existing data ---------------------------------------------------------------------------------
-- Existing balances are available (pending stays 0). Held is what the holds and releases already in
-- the ledger say; then every payout already paid gets its 'payout_paid' entry (chained like any new
-- entry), which empties its hold and rebuilds lifetime_paid_out from entries.
UPDATE balances b SET held = s.held
  FROM (SELECT user_id, -sum(amount) AS held FROM earnings
         WHERE type IN ('payout_hold', 'payout_release') GROUP BY user_id) s
 WHERE b.user_id = s.user_id AND s.held <> 0;
UPDATE balances SET lifetime_paid_out = 0 WHERE lifetime_paid_out <> 0;
DO $$
DECLARE
    p RECORD;
BEGIN
    FOR p IN SELECT id, user_id, amount_cents FROM payout_requests WHERE status = 'paid' ORDER BY user_id, completed_at, id LOOP
        PERFORM ledger_settle_payout(p.user_id, p.id, p.amount_cents * 10000);
    END LOOP;
END
$$;
